//! The bulk CSV format: users, their SIP accounts and devices with their lines, one SIP
//! account per row. Export writes the same format, so an export imports again unchanged.
//!
//! ```text
//! username,display_name,email,sip_user,auth_user,sip_password,account_display_name,registrar,outbound_proxy,transport,mac,vendor,model,category,line
//! alice,Alice A,alice@example.com,100,,s3cret,Alice,sip.example.com,,udp,001565aabbcc,yealink,T54W,Sales,1
//! alice,,,101,,s3cret2,Alice 2,sip.example.com,,tls,001565aabbcc,,,,2
//! bob,Bob B,,,,,,,,,,,,,
//! ```
//!
//! Only the `username` column is required in the header; others may be left out. A row
//! with a `sip_user` gives that user a SIP account; a row with a `mac` puts a device in the
//! domain, and if the row also has a `sip_user` that account is the device's line number
//! `line` (or the next free one). A device belongs to the user named on its first row; a
//! device row without a `sip_user` may leave `username` empty for a device without owner.
//! Rows repeating a user, account or device must not contradict each other; an empty cell
//! means "no change".
//!
//! Cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab
//! or carriage return), and cells starting with `'`, are written with a leading `'`; on
//! import one leading `'` before such a character is removed. So `+4930…` numbers survive a
//! spreadsheet, and every cell, passwords included, survives a round trip unchanged.
//! Cells are not trimmed: names are checked without surrounding spaces, passwords are kept
//! exactly as written.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::Transport;
use crate::names;
use crate::secret::SecretString;
use crate::{Invalid, Mac};

pub const COLUMNS: [&str; 15] = [
    "username",
    "display_name",
    "email",
    "sip_user",
    "auth_user",
    "sip_password",
    "account_display_name",
    "registrar",
    "outbound_proxy",
    "transport",
    "mac",
    "vendor",
    "model",
    "category",
    "line",
];

/// Most rows one import may carry.
pub const MAX_ROWS: usize = 200_000;

/// One row of the format, as text. Export produces these; import reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub cells: [String; 15],
}

impl Row {
    pub fn get(&self, column: &str) -> &str {
        &self.cells[index(column)]
    }
    pub fn set(&mut self, column: &str, value: impl Into<String>) {
        self.cells[index(column)] = value.into();
    }
}

fn index(column: &str) -> usize {
    COLUMNS
        .iter()
        .position(|c| *c == column)
        .expect("a known column")
}

/// A problem with one line of an import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

impl RowError {
    pub fn new(line: u64, reason: impl Into<String>) -> Self {
        Self {
            line,
            reason: reason.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct PlanUser {
    pub line: u64,
    pub username: String,
    pub display_name: String,
    pub email: String,
}

#[derive(Clone, Debug)]
pub struct PlanAccount {
    pub line: u64,
    pub username: String,
    pub sip_user: String,
    pub auth_user: String,
    pub password: Option<SecretString>,
    pub display_name: String,
    pub registrar: String,
    pub outbound_proxy: String,
    pub transport: Option<Transport>,
}

#[derive(Clone, Debug)]
pub struct PlanLine {
    pub line: u64,
    pub position: u32,
    pub sip_user: String,
}

#[derive(Clone, Debug)]
pub struct PlanDevice {
    pub line: u64,
    pub mac: Mac,
    pub owner: Option<String>,
    pub vendor: String,
    pub model: String,
    pub category: String,
    pub lines: Vec<PlanLine>,
}

/// What an import will do, consolidated from its rows; objects in first-seen order.
/// `errors` are the rows refused while reading the file; the store checks the rest against
/// the database too, so one attempt reports every bad row, and applies nothing if any.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub users: Vec<PlanUser>,
    pub accounts: Vec<PlanAccount>,
    pub devices: Vec<PlanDevice>,
    pub errors: Vec<RowError>,
}

impl Plan {
    /// The plan if every row was read cleanly, else the refusals.
    pub fn into_result(self) -> Result<Plan, Vec<RowError>> {
        if self.errors.is_empty() {
            Ok(self)
        } else {
            Err(self.errors)
        }
    }
}

/// Checks a whole file without a database: the plan, or every row refused while reading.
pub fn parse(input: &[u8]) -> Result<Plan, Vec<RowError>> {
    read(input).into_result()
}

/// Reads a whole file into a plan of its good rows and the refusals of its bad ones.
pub fn read(input: &[u8]) -> Plan {
    match read_rows(input) {
        Ok(plan) => plan,
        Err(header) => Plan {
            errors: vec![header],
            ..Plan::default()
        },
    }
}

fn read_rows(input: &[u8]) -> Result<Plan, RowError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let headers = reader.headers().map_err(|e| csv_error(1, &e))?.clone();
    let mut map = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        let h = h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase();
        match COLUMNS.iter().position(|c| *c == h) {
            Some(i) if !map.contains(&i) => map.push(i),
            Some(_) => {
                return Err(RowError::new(1, format!("column '{h}' appears twice")));
            }
            None => {
                return Err(RowError::new(
                    1,
                    format!(
                        "unknown column '{h}'; the columns are {}",
                        COLUMNS.join(",")
                    ),
                ));
            }
        }
    }
    if !map.contains(&0) {
        return Err(RowError::new(1, "the header must have a 'username' column"));
    }
    let mut builder = Builder::default();
    for (n, record) in reader.records().enumerate() {
        if n >= MAX_ROWS {
            builder.errors.push(RowError::new(
                n as u64 + 2,
                format!("an import has at most {MAX_ROWS} rows"),
            ));
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(n as u64 + 2, |p| p.line());
                builder.errors.push(csv_error(line, &e));
                continue;
            }
        };
        let line = record.position().map_or(n as u64 + 2, |p| p.line());
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let mut row = Row::default();
        for (i, cell) in record.iter().enumerate() {
            let cell = unescape(cell);
            // Every column but the password is a name or short text without edge spaces.
            row.cells[map[i]] = if COLUMNS[map[i]] == "sip_password" {
                cell.to_owned()
            } else {
                cell.trim().to_owned()
            };
        }
        if let Err(e) = builder.add(line, &row) {
            builder.errors.push(RowError::new(line, e.to_string()));
        }
    }
    Ok(builder.finish())
}

fn csv_error(line: u64, e: &::csv::Error) -> RowError {
    let reason = match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("has {len} cells, the header has {expected_len}"),
        ::csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_owned(),
        _ => "cannot be read as CSV".to_owned(),
    };
    RowError::new(line, reason)
}

#[derive(Default)]
struct Builder {
    plan: Plan,
    users: BTreeMap<String, usize>,
    accounts: BTreeMap<String, usize>,
    devices: BTreeMap<Mac, usize>,
    errors: Vec<RowError>,
}

/// Sets `slot` from `new` unless `new` is empty; two different non-empty values contradict.
fn agree(field: &str, slot: &mut String, new: &str) -> Result<(), Invalid> {
    if new.is_empty() || slot == new {
        Ok(())
    } else if slot.is_empty() {
        *slot = new.to_owned();
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("'{new}' contradicts '{slot}' given on an earlier row"),
        ))
    }
}

fn optional(v: &str, check: impl Fn(&str) -> Result<String, Invalid>) -> Result<String, Invalid> {
    if v.is_empty() {
        Ok(String::new())
    } else {
        check(v)
    }
}

impl Builder {
    fn add(&mut self, line: u64, row: &Row) -> Result<(), Invalid> {
        if row.get("username").is_empty() {
            if row.get("mac").is_empty() || !row.get("sip_user").is_empty() {
                return Err(Invalid::new(
                    "username",
                    "must not be empty (only a device row without sip_user may leave it empty)",
                ));
            }
            if ["display_name", "email"]
                .iter()
                .any(|c| !row.get(c).is_empty())
            {
                return Err(Invalid::new(
                    "username",
                    "is needed when 'display_name' or 'email' is given",
                ));
            }
            return self.add_device(line, None, "", row);
        }
        let username = names::user_name("username", row.get("username"))?;
        let display_name = names::text("display_name", row.get("display_name"), 200)?;
        let email = optional(row.get("email"), names::email)?;
        let user = match self.users.entry(username.clone()) {
            Entry::Occupied(e) => &mut self.plan.users[*e.get()],
            Entry::Vacant(e) => {
                e.insert(self.plan.users.len());
                self.plan.users.push(PlanUser {
                    line,
                    username: username.clone(),
                    display_name: String::new(),
                    email: String::new(),
                });
                self.plan.users.last_mut().expect("just pushed")
            }
        };
        agree("display_name", &mut user.display_name, &display_name)?;
        agree("email", &mut user.email, &email)?;

        let sip_user = optional(row.get("sip_user"), |v| names::user_name("sip_user", v))?;
        if !sip_user.is_empty() {
            self.add_account(line, &username, &sip_user, row)?;
        } else if [
            "auth_user",
            "sip_password",
            "account_display_name",
            "registrar",
            "outbound_proxy",
            "transport",
            "line",
        ]
        .iter()
        .any(|c| !row.get(c).is_empty())
        {
            return Err(Invalid::new(
                "sip_user",
                "is needed when other account columns or 'line' are given",
            ));
        }

        if !row.get("mac").is_empty() {
            self.add_device(line, Some(&username), &sip_user, row)?;
        } else if ["vendor", "model", "category"]
            .iter()
            .any(|c| !row.get(c).is_empty())
        {
            return Err(Invalid::new(
                "mac",
                "is needed when 'vendor', 'model' or 'category' is given",
            ));
        }
        Ok(())
    }

    fn add_account(
        &mut self,
        line: u64,
        username: &str,
        sip_user: &str,
        row: &Row,
    ) -> Result<(), Invalid> {
        let auth_user = optional(row.get("auth_user"), |v| names::user_name("auth_user", v))?;
        let display_name =
            names::text("account_display_name", row.get("account_display_name"), 200)?;
        let registrar = optional(row.get("registrar"), |v| names::host_port("registrar", v))?;
        let outbound_proxy = optional(row.get("outbound_proxy"), |v| {
            names::host_port("outbound_proxy", v)
        })?;
        let transport = match row.get("transport") {
            "" => None,
            t => Some(
                t.parse::<Transport>()
                    .map_err(|e| Invalid::new("transport", e.reason))?,
            ),
        };
        let password = match row.get("sip_password") {
            "" => None,
            p if p.chars().count() > 256 => {
                return Err(Invalid::new(
                    "sip_password",
                    "must be at most 256 characters",
                ));
            }
            p => Some(SecretString::new(p)),
        };
        let account = match self.accounts.entry(sip_user.to_owned()) {
            Entry::Occupied(e) => &mut self.plan.accounts[*e.get()],
            Entry::Vacant(e) => {
                e.insert(self.plan.accounts.len());
                self.plan.accounts.push(PlanAccount {
                    line,
                    username: username.to_owned(),
                    sip_user: sip_user.to_owned(),
                    auth_user: String::new(),
                    password: None,
                    display_name: String::new(),
                    registrar: String::new(),
                    outbound_proxy: String::new(),
                    transport: None,
                });
                self.plan.accounts.last_mut().expect("just pushed")
            }
        };
        if account.username != username {
            return Err(Invalid::new(
                "sip_user",
                format!(
                    "'{sip_user}' is given to user '{}' on line {}",
                    account.username, account.line
                ),
            ));
        }
        agree("auth_user", &mut account.auth_user, &auth_user)?;
        agree(
            "account_display_name",
            &mut account.display_name,
            &display_name,
        )?;
        agree("registrar", &mut account.registrar, &registrar)?;
        agree(
            "outbound_proxy",
            &mut account.outbound_proxy,
            &outbound_proxy,
        )?;
        match (&account.transport, transport) {
            (Some(a), Some(b)) if *a != b => {
                return Err(Invalid::new(
                    "transport",
                    format!("'{b}' contradicts '{a}' given on an earlier row"),
                ));
            }
            (None, Some(b)) => account.transport = Some(b),
            _ => {}
        }
        match (&account.password, password) {
            (Some(a), Some(b)) if a != &b => {
                return Err(Invalid::new(
                    "sip_password",
                    "contradicts the password given on an earlier row",
                ));
            }
            (None, Some(b)) => account.password = Some(b),
            _ => {}
        }
        Ok(())
    }

    fn add_device(
        &mut self,
        line: u64,
        username: Option<&str>,
        sip_user: &str,
        row: &Row,
    ) -> Result<(), Invalid> {
        let mac = Mac::parse(row.get("mac"))?;
        let vendor = names::text("vendor", row.get("vendor"), 100)?.to_ascii_lowercase();
        let model = names::text("model", row.get("model"), 100)?;
        let category = optional(row.get("category"), names::category_name)?;
        let position = match row.get("line") {
            "" => None,
            p => Some(
                p.parse::<u32>()
                    .ok()
                    .filter(|p| (1..=512).contains(p))
                    .ok_or_else(|| {
                        Invalid::new("line", format!("'{p}' is not a line number from 1 to 512"))
                    })?,
            ),
        };
        let device = match self.devices.entry(mac) {
            Entry::Occupied(e) => &mut self.plan.devices[*e.get()],
            Entry::Vacant(e) => {
                e.insert(self.plan.devices.len());
                self.plan.devices.push(PlanDevice {
                    line,
                    mac,
                    owner: username.map(str::to_owned),
                    vendor: String::new(),
                    model: String::new(),
                    category: String::new(),
                    lines: Vec::new(),
                });
                self.plan.devices.last_mut().expect("just pushed")
            }
        };
        agree("vendor", &mut device.vendor, &vendor)?;
        agree("model", &mut device.model, &model)?;
        agree("category", &mut device.category, &category)?;
        if sip_user.is_empty() {
            return Ok(());
        }
        let position = position
            .unwrap_or_else(|| device.lines.iter().map(|l| l.position).max().unwrap_or(0) + 1);
        if let Some(other) = device.lines.iter().find(|l| l.position == position) {
            return Err(Invalid::new(
                "line",
                format!(
                    "line {position} of {mac} is already given to '{}' on line {}",
                    other.sip_user, other.line
                ),
            ));
        }
        if let Some(other) = device.lines.iter().find(|l| l.sip_user == sip_user) {
            return Err(Invalid::new(
                "sip_user",
                format!("'{sip_user}' is already line {} of {mac}", other.position),
            ));
        }
        if device.lines.len() >= 512 {
            return Err(Invalid::new("line", "a device has at most 512 lines"));
        }
        device.lines.push(PlanLine {
            line,
            position,
            sip_user: sip_user.to_owned(),
        });
        Ok(())
    }

    fn finish(mut self) -> Plan {
        for d in &mut self.plan.devices {
            d.lines.sort_by_key(|l| l.position);
        }
        self.plan.errors = self.errors;
        self.plan
    }
}

fn needs_escape(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\''])
}

fn unescape(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_escape(rest) => rest,
        _ => cell,
    }
}

/// A cell a spreadsheet would run as a formula (or one starting with `'`) with a leading `'`.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if needs_escape(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// Writes rows in the import format, header first, with formula-looking cells escaped.
pub fn write(rows: &[Row]) -> String {
    let mut w = ::csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(COLUMNS)
        .expect("writing to memory cannot fail");
    for row in rows {
        w.write_record(row.cells.iter().map(|c| spreadsheet_safe(c).into_owned()))
            .expect("writing to memory cannot fail");
    }
    String::from_utf8(w.into_inner().expect("writing to memory cannot fail"))
        .expect("cells are strings")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "username,display_name,email,sip_user,sip_password,registrar,transport,mac,model,category,line
alice,Alice A,alice@example.com,100,pw100,sip.example.com,udp,00:15:65:aa:bb:cc,T54W,Sales,1
alice,,,101,pw101,sip.example.com,tls,001565AABBCC,,,2
bob,Bob,,+4930123,pw,,,,,,
";

    #[test]
    fn consolidates_users_accounts_devices_and_lines() {
        let plan = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(plan.users.len(), 2);
        assert_eq!(plan.accounts.len(), 3);
        assert_eq!(plan.accounts[1].transport, Some(Transport::Tls));
        assert_eq!(plan.devices.len(), 1);
        let d = &plan.devices[0];
        assert_eq!(d.owner.as_deref(), Some("alice"));
        assert_eq!(d.model, "T54W");
        let lines: Vec<_> = d
            .lines
            .iter()
            .map(|l| (l.position, l.sip_user.as_str()))
            .collect();
        assert_eq!(lines, [(1, "100"), (2, "101")]);
    }

    #[test]
    fn reports_every_bad_row_with_its_line() {
        let bad = "username,sip_user,mac,line,transport
alice,100,not-a-mac,1,udp
,101,,,
carol,102,001565aabbcc,0,
dave,103,,,sctp
alice,100,001565aabbcd,,
erin,100,,,
";
        let errs = parse(bad.as_bytes()).unwrap_err();
        let lines: Vec<u64> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 7], "{errs:#?}");
        assert!(errs[0].reason.starts_with("mac:"), "{}", errs[0].reason);
        assert!(
            errs[4].reason.contains("given to user 'alice'"),
            "{}",
            errs[4].reason
        );
    }

    #[test]
    fn a_device_row_may_have_no_owner_but_nothing_else_may() {
        let plan = parse(b"username,mac,model\n,001565aabbcc,T54W\n").unwrap();
        assert_eq!(plan.devices[0].owner, None);
        assert!(plan.users.is_empty());
        let e = parse(b"username,sip_user,mac\n,100,001565aabbcc\n").unwrap_err();
        assert!(e[0].reason.starts_with("username:"), "{}", e[0].reason);
        assert!(parse(b"username,email\n,a@b.c\n").is_err());
    }

    #[test]
    fn the_documented_example_parses_as_documented() {
        let doc = include_str!("../../../docs/import-format.md");
        let example = doc
            .split("```")
            .nth(1)
            .expect("an example block")
            .trim_start_matches('\n');
        let plan = parse(example.as_bytes()).unwrap();
        assert_eq!(plan.users.len(), 1);
        assert_eq!(plan.accounts.len(), 2);
        assert_eq!(plan.devices.len(), 2);
        let d = &plan.devices[0];
        assert_eq!(
            (d.owner.as_deref(), d.model.as_str(), d.category.as_str()),
            (Some("alice"), "T54W", "Sales phones")
        );
        assert_eq!(
            d.lines
                .iter()
                .map(|l| (l.position, l.sip_user.as_str()))
                .collect::<Vec<_>>(),
            [(1, "100"), (2, "101")]
        );
        assert_eq!(plan.devices[1].owner, None);
    }

    #[test]
    fn header_problems() {
        assert_eq!(
            parse(b"user,sip_user\n").unwrap_err()[0].reason,
            "unknown column 'user'; the columns are username,display_name,email,sip_user,auth_user,sip_password,account_display_name,registrar,outbound_proxy,transport,mac,vendor,model,category,line"
        );
        assert!(
            parse(b"sip_user\n100\n").unwrap_err()[0]
                .reason
                .contains("username")
        );
        assert!(parse(b"username,username\n").is_err());
        let ragged = parse(b"username,sip_user\nalice\n").unwrap_err();
        assert_eq!(ragged[0].line, 2);
    }

    #[test]
    fn contradictions_are_errors() {
        let e = parse(b"username,display_name\nalice,A\nalice,B\n").unwrap_err();
        assert_eq!(e[0].line, 3);
        let e = parse(
            b"username,sip_user,mac,line\nalice,100,001565aabbcc,1\nalice,101,001565aabbcc,1\n",
        )
        .unwrap_err();
        assert!(
            e[0].reason.contains("line 1 of 001565aabbcc"),
            "{}",
            e[0].reason
        );
    }

    #[test]
    fn write_escapes_formulas_and_parse_reads_them_back() {
        let mut row = Row::default();
        row.set("username", "bob");
        row.set("sip_user", "+4930123");
        row.set("account_display_name", "=HYPERLINK(\"x\")");
        row.set("sip_password", " p,w\"x ");
        let mut quoted = Row::default();
        quoted.set("username", "carol");
        quoted.set("sip_user", "300");
        quoted.set("sip_password", "'=x");
        let text = write(&[row, quoted]);
        assert!(text.contains("'+4930123"));
        assert!(text.contains("'=HYPERLINK"));
        let plan = parse(text.as_bytes()).unwrap();
        assert_eq!(plan.accounts[0].sip_user, "+4930123");
        assert_eq!(plan.accounts[0].display_name, "=HYPERLINK(\"x\")");
        assert_eq!(
            plan.accounts[0].password.as_ref().unwrap().expose(),
            " p,w\"x ",
            "passwords keep their spaces"
        );
        assert_eq!(
            plan.accounts[1].password.as_ref().unwrap().expose(),
            "'=x",
            "a leading quote survives"
        );
    }
}
