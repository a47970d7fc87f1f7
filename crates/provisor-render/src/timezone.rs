//! One `timezone` setting (an IANA name, e.g. `Europe/Berlin`) in every vendor's form:
//! templates read `time.*` instead of asking admins for seven vendor-specific settings.
//!
//! The table gives each zone's standard offset and POSIX TZ rule (with daylight saving);
//! the offset forms (Yealink `+1`, Cisco `GMT+01:00`, Fanvil quarter hours, Poly seconds)
//! follow from the offset. Yealink city names and Snom zone codes are given only where
//! `reference/vendor-keys.md` confirms them; elsewhere those phones get the offset alone.
//! Vendor-specific settings (`snom_timezone`, …) still win in the templates.

use serde::Serialize;

/// The time zone as each vendor writes it; all empty without a (known) `timezone` setting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Time {
    /// The IANA name as set, e.g. `Europe/Berlin`; empty if none is set.
    pub zone: String,
    /// Whether the zone is in the table (the fields below are filled).
    pub known: bool,
    /// Standard (winter) offset from UTC.
    pub utc_offset_minutes: i32,
    pub utc_offset_seconds: i32,
    /// In quarter hours (Fanvil): UTC+1 is 4.
    pub utc_offset_quarters: i32,
    /// `+1`, `-5`, `+5:30`, `0` (Yealink).
    pub utc_offset_hours: String,
    /// `GMT+01:00` (Cisco).
    pub gmt: String,
    /// POSIX TZ with daylight saving, e.g. `CET-1CEST,M3.5.0,M10.5.0/3` (Grandstream).
    pub posix: String,
    /// Yealink `local_time.time_zone_name`, where known.
    pub yealink_name: String,
    /// Snom `timezone`, where known.
    pub snom: String,
}

/// (IANA name, standard offset in minutes, POSIX TZ, Yealink name, Snom code).
const ZONES: &[(&str, i32, &str, &str, &str)] = &[
    ("UTC", 0, "UTC0", "", ""),
    ("Etc/UTC", 0, "UTC0", "", ""),
    (
        "Europe/London",
        0,
        "GMT0BST,M3.5.0/1,M10.5.0",
        "United Kingdom(London)",
        "GBR-0",
    ),
    ("Europe/Dublin", 0, "GMT0IST,M3.5.0/1,M10.5.0", "", ""),
    ("Europe/Lisbon", 0, "WET0WEST,M3.5.0/1,M10.5.0", "", ""),
    ("Europe/Berlin", 60, CET, "Germany(Berlin)", "GER+1"),
    ("Europe/Rome", 60, CET, "Italy(Rome)", "ITA+1"),
    ("Europe/Paris", 60, CET, "", ""),
    ("Europe/Madrid", 60, CET, "", ""),
    ("Europe/Amsterdam", 60, CET, "", ""),
    ("Europe/Brussels", 60, CET, "", ""),
    ("Europe/Luxembourg", 60, CET, "", ""),
    ("Europe/Vienna", 60, CET, "", ""),
    ("Europe/Zurich", 60, CET, "", ""),
    ("Europe/Copenhagen", 60, CET, "", ""),
    ("Europe/Oslo", 60, CET, "", ""),
    ("Europe/Stockholm", 60, CET, "", ""),
    ("Europe/Warsaw", 60, CET, "", ""),
    ("Europe/Prague", 60, CET, "", ""),
    ("Europe/Budapest", 60, CET, "", ""),
    ("Europe/Athens", 120, EET, "", ""),
    ("Europe/Helsinki", 120, EET, "", ""),
    ("Europe/Bucharest", 120, EET, "", ""),
    ("Europe/Sofia", 120, EET, "", ""),
    ("Europe/Kyiv", 120, EET, "", ""),
    ("Europe/Istanbul", 180, "<+03>-3", "", ""),
    ("Europe/Moscow", 180, "MSK-3", "", ""),
    ("Africa/Johannesburg", 120, "SAST-2", "", ""),
    ("Asia/Dubai", 240, "<+04>-4", "", ""),
    ("Asia/Kolkata", 330, "IST-5:30", "", ""),
    ("Asia/Singapore", 480, "<+08>-8", "", ""),
    ("Asia/Shanghai", 480, "CST-8", "", ""),
    ("Asia/Hong_Kong", 480, "HKT-8", "", ""),
    ("Asia/Tokyo", 540, "JST-9", "", ""),
    ("Australia/Brisbane", 600, "AEST-10", "", ""),
    (
        "Australia/Sydney",
        600,
        "AEST-10AEDT,M10.1.0,M4.1.0/3",
        "",
        "",
    ),
    (
        "Australia/Melbourne",
        600,
        "AEST-10AEDT,M10.1.0,M4.1.0/3",
        "",
        "",
    ),
    (
        "Pacific/Auckland",
        720,
        "NZST-12NZDT,M9.5.0,M4.1.0/3",
        "",
        "",
    ),
    ("America/Sao_Paulo", -180, "<-03>3", "", ""),
    (
        "America/New_York",
        -300,
        US_EASTERN,
        "United States-Eastern Time",
        "USA-5",
    ),
    ("America/Toronto", -300, US_EASTERN, "", ""),
    ("America/Chicago", -360, "CST6CDT,M3.2.0,M11.1.0", "", ""),
    ("America/Mexico_City", -360, "CST6", "", ""),
    ("America/Denver", -420, "MST7MDT,M3.2.0,M11.1.0", "", ""),
    ("America/Phoenix", -420, "MST7", "", ""),
    (
        "America/Los_Angeles",
        -480,
        "PST8PDT,M3.2.0,M11.1.0",
        "",
        "",
    ),
    ("America/Vancouver", -480, "PST8PDT,M3.2.0,M11.1.0", "", ""),
];

const CET: &str = "CET-1CEST,M3.5.0,M10.5.0/3";
const EET: &str = "EET-2EEST,M3.5.0/3,M10.5.0/4";
const US_EASTERN: &str = "EST5EDT,M3.2.0,M11.1.0";

/// `+1`, `-5`, `+5:30`, `0`.
fn hours(minutes: i32) -> String {
    if minutes == 0 {
        return "0".into();
    }
    let sign = if minutes < 0 { '-' } else { '+' };
    let (h, m) = (minutes.abs() / 60, minutes.abs() % 60);
    if m == 0 {
        format!("{sign}{h}")
    } else {
        format!("{sign}{h}:{m:02}")
    }
}

impl Time {
    /// The zone of a `timezone` setting; unknown names keep only `zone`.
    pub fn of(zone: &str) -> Time {
        let zone = zone.trim();
        let Some(&(_, offset, posix, yealink, snom)) = ZONES
            .iter()
            .find(|(name, ..)| name.eq_ignore_ascii_case(zone))
        else {
            return Time {
                zone: zone.to_owned(),
                ..Time::default()
            };
        };
        let sign = if offset < 0 { '-' } else { '+' };
        Time {
            zone: zone.to_owned(),
            known: true,
            utc_offset_minutes: offset,
            utc_offset_seconds: offset * 60,
            utc_offset_quarters: offset / 15,
            utc_offset_hours: hours(offset),
            gmt: format!("GMT{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60),
            posix: posix.to_owned(),
            yealink_name: yealink.to_owned(),
            snom: snom.to_owned(),
        }
    }

    /// The zones the table knows.
    pub fn zones() -> impl Iterator<Item = &'static str> {
        ZONES.iter().map(|(name, ..)| *name)
    }
}

#[cfg(test)]
mod tests {
    use super::Time;

    #[test]
    fn every_form_of_a_zone() {
        let berlin = Time::of("Europe/Berlin");
        assert!(berlin.known);
        assert_eq!(berlin.utc_offset_hours, "+1");
        assert_eq!(berlin.utc_offset_seconds, 3600);
        assert_eq!(berlin.utc_offset_quarters, 4);
        assert_eq!(berlin.gmt, "GMT+01:00");
        assert_eq!(berlin.posix, "CET-1CEST,M3.5.0,M10.5.0/3");
        assert_eq!(
            (berlin.yealink_name.as_str(), berlin.snom.as_str()),
            ("Germany(Berlin)", "GER+1")
        );
        let ny = Time::of("america/new_york");
        assert_eq!(
            (
                ny.utc_offset_hours.as_str(),
                ny.gmt.as_str(),
                ny.utc_offset_quarters
            ),
            ("-5", "GMT-05:00", -20)
        );
        let india = Time::of("Asia/Kolkata");
        assert_eq!(
            (india.utc_offset_hours.as_str(), india.gmt.as_str()),
            ("+5:30", "GMT+05:30")
        );
        assert_eq!(Time::of("UTC").utc_offset_hours, "0");
        let unknown = Time::of("Mars/Olympus");
        assert!(!unknown.known && unknown.zone == "Mars/Olympus" && unknown.posix.is_empty());
        assert!(Time::zones().all(|z| Time::of(z).known));
    }
}
