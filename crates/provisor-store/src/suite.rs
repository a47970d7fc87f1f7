//! The store test suite: one set of behaviours every backend must show, written against
//! the `Store` trait only and run unchanged against each real database.
//!
//! A backend's test file is a `make` function and one macro call:
//!
//! ```ignore
//! async fn make() -> Option<Arc<dyn Store>> { /* a fresh, empty store */ }
//! provisor_store::store_suite!(make);
//! ```
//!
//! `make` returns `None` when the backend cannot run here (the test is then skipped); it
//! must panic instead where skipping is not allowed (CI). Every case gets its own store.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use provisor_domain::csv;
use provisor_domain::model::*;
use provisor_domain::{Invalid, Mac};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{ImportSummary, Page, PageRequest, Result, Store, StoreError, WebhookLease};

/// Expands to one `#[tokio::test]` per case of the suite, each on a store from `$make`
/// (`async fn() -> Option<Arc<dyn Store>>`; `None` skips). The list below is the only list
/// of cases: a case missing here does not run, a name here without a function does not
/// compile.
#[macro_export]
macro_rules! store_suite {
    ($make:path) => {
        $crate::store_suite!(@cases $make;
            domain_crud,
            domain_pagination,
            category_crud,
            user_crud,
            account_crud,
            account_in_use,
            device_crud,
            device_references_are_checked,
            device_list_filters_and_pages,
            tenant_isolation,
            deleted_domain_leaves_nothing_behind,
            settings_round_trip,
            tokens,
            audit_device_history,
            audit_never_holds_secrets,
            import_creates_then_changes_nothing,
            import_is_all_or_nothing,
            import_refuses_mac_of_other_domain,
            export_round_trip,
            meta,
            concurrent_creates_of_distinct_macs,
            concurrent_creates_of_one_mac,
            phone_lookup_by_mac_and_token,
            token_rotation_grace,
            disarm_once,
            contacts_recorded,
            refusals_kept_per_device,
            uploads_kept_latest,
            unassigned_bound_counts_only_unclaimed,
            templates_per_domain_and_category,
            codes_redeem_once,
            codes_race_and_expire,
            rollouts_list_every_user,
            rollouts_expire,
            innovaphone_settings_keep_secrets,
            pbx_phone_provisioning_is_idempotent,
            pbx_phone_refusals_write_nothing,
            sysclients_join_with_a_code_of_their_domain,
            jobs_progress_through_check_ins,
            admins_and_sessions,
            leases_give_work_to_one_node,
            limits_are_counted_in_one_transaction,
        );
    };
    (@cases $make:path; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $make().await else { return };
                $crate::suite::$case(store).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------
// Helpers

fn actor() -> Actor {
    Actor("test".into())
}

/// Builds an input the way the API does: from JSON.
fn input<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("test input does not deserialize: {e}"))
}

fn mac(s: &str) -> Mac {
    Mac::parse(s).unwrap()
}

fn all() -> PageRequest {
    PageRequest {
        limit: PageRequest::MAX_LIMIT,
        after: None,
    }
}

fn obj(v: Value) -> provisor_domain::settings::Settings {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

async fn new_domain(s: &dyn Store, name: &str) -> Domain {
    let new: NewDomain = input(json!({ "name": name }));
    s.create_domain(&actor(), &new.validate().unwrap())
        .await
        .unwrap()
}

async fn new_category(s: &dyn Store, d: DomainId, name: &str) -> Category {
    let new: NewCategory = input(json!({ "name": name }));
    s.create_category(&actor(), d, &new.validate().unwrap())
        .await
        .unwrap()
}

async fn new_user(s: &dyn Store, d: DomainId, username: &str) -> User {
    let new: NewUser = input(json!({ "username": username }));
    s.create_user(&actor(), d, &new.validate().unwrap(), None)
        .await
        .unwrap()
}

fn account_input(sip_user: &str, password: &str) -> NewSipAccount {
    let new: NewSipAccount = input(json!({ "sip_user": sip_user, "password": password }));
    new.validate().unwrap()
}

async fn new_account(
    s: &dyn Store,
    d: DomainId,
    username: &str,
    sip_user: &str,
    password: &str,
) -> SipAccount {
    s.create_account(&actor(), d, username, &account_input(sip_user, password))
        .await
        .unwrap()
}

fn device_input(v: Value) -> NewDevice {
    let new: NewDevice = input(v);
    new.validate().unwrap()
}

async fn new_device(s: &dyn Store, d: DomainId, v: Value) -> Device {
    s.create_device(&actor(), d, &device_input(v))
        .await
        .unwrap()
}

fn device_patch(v: Value) -> DevicePatch {
    let p: DevicePatch = input(v);
    p.validate().unwrap()
}

/// `(position, sip_user)` of each line, in order.
fn lines(d: &Device) -> Vec<(u32, String)> {
    d.lines
        .iter()
        .map(|l| (l.position, l.sip_user.clone()))
        .collect()
}

fn macs(devices: &[Device]) -> Vec<String> {
    devices.iter().map(|d| d.mac.to_string()).collect()
}

#[track_caller]
fn expect_not_found<T: Debug>(r: Result<T>, what: &str) {
    match r {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
fn expect_conflict<T: Debug>(r: Result<T>, what: &str) -> String {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

#[track_caller]
fn expect_invalid<T: Debug>(r: Result<T>, field: &str, what: &str) -> Invalid {
    match r {
        Err(StoreError::Invalid(i)) if i.field == field => i,
        other => panic!("{what}: expected Invalid naming '{field}', got {other:?}"),
    }
}

/// Follows `next` from the first page to the last; returns the items and the page sizes.
async fn collect_pages<T, F, Fut>(limit: u32, mut fetch: F) -> (Vec<T>, Vec<usize>)
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut req = PageRequest { limit, after: None };
    for _ in 0..1000 {
        let page = fetch(req).await.unwrap();
        assert!(
            page.items.len() <= limit as usize,
            "a page holds at most `limit` items"
        );
        sizes.push(page.items.len());
        items.extend(page.items);
        match page.next {
            Some(next) => req.after = Some(next),
            None => return (items, sizes),
        }
    }
    panic!("pagination does not end");
}

/// Parses and imports a CSV text.
/// The fields of accounts an import sets, to compare them as a whole.
fn account_fields(accounts: &[SipAccount]) -> Vec<(&str, &str, &str, &str, &str, Transport)> {
    accounts
        .iter()
        .map(|x| {
            (
                x.user.as_str(),
                x.sip_user.as_str(),
                x.auth_user.as_str(),
                x.display_name.as_str(),
                x.registrar.as_str(),
                x.transport,
            )
        })
        .collect()
}

async fn import_csv(s: &dyn Store, d: DomainId, text: &str) -> Result<ImportSummary> {
    let plan =
        csv::parse(text.as_bytes()).unwrap_or_else(|e| panic!("test CSV does not parse: {e:?}"));
    s.import(&actor(), d, &plan).await
}

async fn account_by_sip_user(s: &dyn Store, d: DomainId, sip_user: &str) -> SipAccount {
    let accounts = s.list_accounts(d, None, all()).await.unwrap().items;
    accounts
        .into_iter()
        .find(|a| a.sip_user == sip_user)
        .unwrap_or_else(|| panic!("no SIP account '{sip_user}'"))
}

// ---------------------------------------------------------------------------------------
// Domains and categories

pub async fn domain_crud(s: Arc<dyn Store>) {
    let s = &*s;
    let settings = json!({"ntp": {"server": "pool.ntp.org", "interval": 60}, "lang": "de"});
    let new: NewDomain =
        input(json!({"name": "Acme.Example", "description": "Acme Inc.", "settings": settings}));
    let created = s
        .create_domain(&actor(), &new.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(created.name, "acme.example");
    assert_eq!(created.description, "Acme Inc.");
    assert_eq!(Value::Object(created.settings.clone()), settings);
    assert_eq!(s.domain("acme.example").await.unwrap(), created);
    assert_eq!(s.domain_by_id(created.id).await.unwrap(), created);

    let dup: NewDomain = input(json!({"name": "ACME.example"}));
    let msg = expect_conflict(
        s.create_domain(&actor(), &dup.validate().unwrap()).await,
        "a second domain of the same name",
    );
    assert!(
        msg.contains("acme.example"),
        "the conflict names the domain: {msg}"
    );

    let patch: DomainPatch = input(json!({"description": "Acme GmbH"}));
    let updated = s
        .update_domain(&actor(), created.id, &patch.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(updated.description, "Acme GmbH");
    assert_eq!(
        Value::Object(updated.settings.clone()),
        settings,
        "a patch without settings keeps them"
    );
    assert_eq!(
        (updated.id, &updated.name, updated.created_at),
        (created.id, &created.name, created.created_at)
    );
    let patch: DomainPatch = input(json!({"settings": {"lang": "fr"}}));
    let updated = s
        .update_domain(&actor(), created.id, &patch.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(
        Value::Object(updated.settings.clone()),
        json!({"lang": "fr"})
    );
    assert_eq!(
        updated.description, "Acme GmbH",
        "a patch without description keeps it"
    );
    assert_eq!(s.domain("acme.example").await.unwrap(), updated);
    assert_eq!(s.domain_by_id(created.id).await.unwrap(), updated);

    expect_not_found(s.domain("nope.example").await, "domain by unknown name");
    let missing = DomainId(created.id.0 + 1000);
    expect_not_found(s.domain_by_id(missing).await, "domain by unknown id");
    expect_not_found(
        s.update_domain(&actor(), missing, &DomainPatch::default())
            .await,
        "update of unknown domain",
    );
    expect_not_found(
        s.delete_domain(&actor(), missing).await,
        "delete of unknown domain",
    );

    // A domain goes with everything it holds, devices with lines included.
    let d = created.id;
    new_category(s, d, "Desk").await;
    new_user(s, d, "alice").await;
    new_account(s, d, "alice", "100", "pw").await;
    new_device(
        s,
        d,
        json!({"mac": "001565aabbcc", "category": "Desk", "user": "alice", "lines": ["100"]}),
    )
    .await;
    s.delete_domain(&actor(), d).await.unwrap();
    expect_not_found(s.domain("acme.example").await, "deleted domain by name");
    expect_not_found(s.domain_by_id(d).await, "deleted domain by id");
    expect_not_found(s.delete_domain(&actor(), d).await, "second delete");
    assert!(s.list_domains(all()).await.unwrap().items.is_empty());

    // Its name and its devices' MACs are free again.
    let other = new_domain(s, "other.example").await;
    new_device(s, other.id, json!({"mac": "00:15:65:aa:bb:cc"})).await;
    let again = new_domain(s, "acme.example").await;
    assert!(
        s.list_users(again.id, None, all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.list_categories(again.id, all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn domain_pagination(s: Arc<dyn Store>) {
    let s = &*s;
    let names = [
        "d1.example",
        "d2.example",
        "d3.example",
        "d4.example",
        "d5.example",
    ];
    for n in names {
        new_domain(s, n).await;
    }
    let (items, sizes) = collect_pages(2, |p| s.list_domains(p)).await;
    let seen: Vec<&str> = items.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(seen, names, "every domain once, in creation order");
    assert_eq!(sizes, [2, 2, 1]);

    let exact = s
        .list_domains(PageRequest {
            limit: 5,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 5);
    assert_eq!(exact.next, None, "a page that holds the rest has no next");
    let (items, sizes) = collect_pages(1, |p| s.list_domains(p)).await;
    assert_eq!(items.len(), 5);
    assert_eq!(sizes, [1, 1, 1, 1, 1]);
}

pub async fn category_crud(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let b = new_domain(s, "b.example").await.id;

    let new: NewCategory =
        input(json!({"name": " Sales ", "provisioning": true, "settings": {"ringtone": "ring3"}}));
    let sales = s
        .create_category(&actor(), a, &new.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(sales.name, "Sales");
    assert!(sales.provisioning);
    assert_eq!(
        Value::Object(sales.settings.clone()),
        json!({"ringtone": "ring3"})
    );
    let lab = new_category(s, a, "Lab").await;
    assert!(!lab.provisioning, "provisioning defaults to off");
    assert_eq!(s.category(a, "Sales").await.unwrap(), sales);

    let listed = s.list_categories(a, all()).await.unwrap();
    assert_eq!(listed.items, [sales.clone(), lab.clone()]);
    assert_eq!(listed.next, None);

    let new: NewCategory = input(json!({"name": "Sales"}));
    expect_conflict(
        s.create_category(&actor(), a, &new.clone().validate().unwrap())
            .await,
        "same category name in one domain",
    );
    let in_b = s
        .create_category(&actor(), b, &new.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(
        in_b.name, "Sales",
        "the same name in another domain is fine"
    );

    // A device in the category follows its renames and is left without it on delete.
    new_device(s, a, json!({"mac": "001565000001", "category": "Sales"})).await;

    let patch: CategoryPatch = input(json!({"name": "Sales EU", "provisioning": false}));
    let renamed = s
        .update_category(&actor(), a, "Sales", &patch.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(renamed.id, sales.id);
    assert_eq!(renamed.name, "Sales EU");
    assert!(!renamed.provisioning);
    assert_eq!(
        renamed.settings, sales.settings,
        "a patch without settings keeps them"
    );
    expect_not_found(s.category(a, "Sales").await, "old name after rename");
    assert_eq!(s.category(a, "Sales EU").await.unwrap(), renamed);
    assert_eq!(
        s.category(b, "Sales").await.unwrap(),
        in_b,
        "the other domain's category is untouched"
    );
    assert_eq!(
        s.device(a, mac("001565000001"))
            .await
            .unwrap()
            .category
            .as_deref(),
        Some("Sales EU")
    );

    let patch: CategoryPatch = input(json!({"provisioning": true}));
    let toggled = s
        .update_category(&actor(), a, "Sales EU", &patch.validate().unwrap())
        .await
        .unwrap();
    assert!(toggled.provisioning);
    assert_eq!(toggled.name, "Sales EU");

    let patch: CategoryPatch = input(json!({"name": "Sales EU"}));
    expect_conflict(
        s.update_category(&actor(), a, "Lab", &patch.validate().unwrap())
            .await,
        "rename onto a taken name",
    );
    assert_eq!(
        s.category(a, "Lab").await.unwrap(),
        lab,
        "a refused rename changes nothing"
    );

    s.delete_category(&actor(), a, "Sales EU").await.unwrap();
    expect_not_found(s.category(a, "Sales EU").await, "deleted category");
    assert_eq!(
        s.device(a, mac("001565000001")).await.unwrap().category,
        None
    );
    assert_eq!(s.list_categories(a, all()).await.unwrap().items, [lab]);

    expect_not_found(
        s.delete_category(&actor(), a, "Sales EU").await,
        "second delete",
    );
    expect_not_found(
        s.update_category(&actor(), a, "Nope", &CategoryPatch::default())
            .await,
        "update of unknown category",
    );
    expect_not_found(s.category(a, "Nope").await, "unknown category");
}

// ---------------------------------------------------------------------------------------
// Users and SIP accounts

pub async fn user_crud(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let b = new_domain(s, "b.example").await.id;
    let hash1 = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaDE";
    let hash2 = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaDI";

    let new: NewUser = input(json!({
        "username": "alice", "display_name": "Alice A", "email": "alice@example.com",
        "password": "portal-password", "settings": {"lang": "de"}
    }));
    let new = new.validate().unwrap();
    let alice = s.create_user(&actor(), a, &new, Some(hash1)).await.unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.display_name, "Alice A");
    assert_eq!(alice.email, "alice@example.com");
    assert!(alice.enabled);
    assert!(alice.has_password);
    assert_eq!(
        s.user_password_hash(a, "alice").await.unwrap().as_deref(),
        Some(hash1)
    );
    assert_eq!(s.user(a, "alice").await.unwrap(), alice);

    let bob = new_user(s, a, "bob").await;
    assert!(!bob.has_password);
    assert_eq!(s.user_password_hash(a, "bob").await.unwrap(), None);

    expect_conflict(
        s.create_user(&actor(), a, &new, None).await,
        "same username in one domain",
    );
    let alice_b = s.create_user(&actor(), b, &new, None).await.unwrap();
    assert!(
        !alice_b.has_password,
        "the other domain's alice has her own (no) password"
    );
    assert_eq!(
        s.user_password_hash(a, "alice").await.unwrap().as_deref(),
        Some(hash1)
    );

    let patch: UserPatch = input(json!({"display_name": "Alice Z", "email": "", "enabled": false}));
    let updated = s
        .update_user(&actor(), a, "alice", &patch.validate().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(updated.display_name, "Alice Z");
    assert_eq!(updated.email, "");
    assert!(!updated.enabled);
    assert!(
        updated.has_password,
        "an update without a hash keeps the password"
    );
    assert_eq!(updated.settings, alice.settings);
    assert_eq!(
        s.user_password_hash(a, "alice").await.unwrap().as_deref(),
        Some(hash1)
    );
    assert_eq!(s.user(a, "alice").await.unwrap(), updated);

    let updated = s
        .update_user(&actor(), a, "alice", &UserPatch::default(), Some(hash2))
        .await
        .unwrap();
    assert!(updated.has_password);
    assert_eq!(
        updated.display_name, "Alice Z",
        "an empty patch changes no field"
    );
    assert_eq!(
        s.user_password_hash(a, "alice").await.unwrap().as_deref(),
        Some(hash2)
    );
    let bob2 = s
        .update_user(&actor(), a, "bob", &UserPatch::default(), Some(hash1))
        .await
        .unwrap();
    assert!(bob2.has_password);
    assert_eq!(
        s.user_password_hash(a, "bob").await.unwrap().as_deref(),
        Some(hash1)
    );

    let names: Vec<String> = s
        .list_users(a, None, all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let (paged, sizes) = collect_pages(1, |p| s.list_users(a, None, p)).await;
    assert_eq!(
        paged
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(sizes, [1, 1]);

    // Searching: username, display name or e-mail, ignoring case; `%` and `_` are
    // themselves, not wildcards.
    let found = |search: &'static str| async move {
        s.list_users(a, Some(search), all())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|u| u.username)
            .collect::<Vec<_>>()
    };
    assert_eq!(found("ALI").await, ["alice"]);
    assert_eq!(found("alice z").await, ["alice"], "display name");
    assert_eq!(found("o").await, ["bob"]);
    assert!(found("%").await.is_empty() && found("_").await.is_empty());
    let (paged, _) = collect_pages(1, |p| s.list_users(a, Some("b"), p)).await;
    assert_eq!(paged.len(), 1);
    assert!(
        s.list_users(b, Some("bob"), all())
            .await
            .unwrap()
            .items
            .is_empty(),
        "another domain's users"
    );

    // A deleted user's devices stay, without owner.
    new_device(s, a, json!({"mac": "001565000002", "user": "bob"})).await;
    s.delete_user(&actor(), a, "bob").await.unwrap();
    expect_not_found(s.user(a, "bob").await, "deleted user");
    expect_not_found(s.user_password_hash(a, "bob").await, "hash of deleted user");
    assert_eq!(s.device(a, mac("001565000002")).await.unwrap().user, None);
    let names: Vec<String> = s
        .list_users(a, None, all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice"]);

    expect_not_found(s.user(a, "nobody").await, "unknown user");
    expect_not_found(
        s.update_user(&actor(), a, "nobody", &UserPatch::default(), None)
            .await,
        "update of unknown user",
    );
    expect_not_found(
        s.delete_user(&actor(), a, "nobody").await,
        "delete of unknown user",
    );
    expect_not_found(
        s.user_password_hash(a, "nobody").await,
        "hash of unknown user",
    );
}

/// Characters that break naive XML, shell, SQL or JSON handling, plus non-ASCII.
const TRICKY_PASSWORD: &str = "Zq7-s3cr3t<&>\"'`;\\ ü€🎉";
const TRICKY_PASSWORD_2: &str = "Xv9-n3w<p&ss>\"'ß";

pub async fn account_crud(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let b = new_domain(s, "b.example").await.id;
    new_user(s, a, "alice").await;
    new_user(s, a, "bob").await;
    new_user(s, b, "carol").await;

    let new: NewSipAccount = input(json!({
        "sip_user": "100", "auth_user": "a100", "password": TRICKY_PASSWORD, "display_name": "Alice Desk",
        "registrar": "sip.example.com:5061", "outbound_proxy": "proxy.example.com", "transport": "tls",
        "options": {"srtp": "mandatory", "codecs": ["g722", "pcma"]}
    }));
    let acc = s
        .create_account(&actor(), a, "alice", &new.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(acc.user, "alice");
    assert_eq!(acc.sip_user, "100");
    assert_eq!(acc.auth_user, "a100");
    assert_eq!(acc.display_name, "Alice Desk");
    assert_eq!(acc.registrar, "sip.example.com:5061");
    assert_eq!(acc.outbound_proxy, "proxy.example.com");
    assert_eq!(acc.transport, Transport::Tls);
    assert_eq!(
        Value::Object(acc.options.clone()),
        json!({"srtp": "mandatory", "codecs": ["g722", "pcma"]})
    );
    assert_eq!(s.account(a, acc.id).await.unwrap(), acc);
    assert_eq!(
        s.account_password(a, acc.id).await.unwrap().expose(),
        TRICKY_PASSWORD
    );

    let bob_acc = new_account(s, a, "bob", "200", "bob-pw").await;
    assert_eq!(
        bob_acc.transport,
        Transport::Udp,
        "transport defaults to udp"
    );
    assert_eq!(
        s.account_password(a, bob_acc.id).await.unwrap().expose(),
        "bob-pw"
    );

    // The password never leaves the store except through account_password.
    let listed = s.list_accounts(a, None, all()).await.unwrap();
    for text in [
        serde_json::to_string(&acc).unwrap(),
        serde_json::to_string(&listed.items).unwrap(),
    ] {
        assert!(
            !text.contains("Zq7-s3cr3t"),
            "an account serializes without its password: {text}"
        );
        assert!(!text.contains(TRICKY_PASSWORD));
        assert!(!text.contains("bob-pw"));
    }

    expect_conflict(
        s.create_account(&actor(), a, "bob", &account_input("100", "x"))
            .await,
        "same sip_user in one domain",
    );
    let in_b = s
        .create_account(&actor(), b, "carol", &account_input("100", "carol-pw"))
        .await
        .unwrap();
    assert_eq!(
        in_b.user, "carol",
        "the same sip_user in another domain is fine"
    );
    assert_eq!(
        s.account_password(a, acc.id).await.unwrap().expose(),
        TRICKY_PASSWORD
    );
    expect_not_found(
        s.create_account(&actor(), a, "nobody", &account_input("300", "x"))
            .await,
        "account for unknown user",
    );

    assert_eq!(listed.items, [acc.clone(), bob_acc.clone()]);
    let of_alice = s
        .list_accounts(a, Some("alice"), all())
        .await
        .unwrap()
        .items;
    assert_eq!(of_alice, std::slice::from_ref(&acc));
    let of_bob = s.list_accounts(a, Some("bob"), all()).await.unwrap().items;
    assert_eq!(of_bob, std::slice::from_ref(&bob_acc));
    assert!(
        s.list_accounts(a, Some("nobody"), all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let (paged, sizes) = collect_pages(1, |p| s.list_accounts(a, None, p)).await;
    assert_eq!(paged, [acc.clone(), bob_acc.clone()]);
    assert_eq!(sizes, [1, 1]);

    let patch: SipAccountPatch = input(json!({
        "sip_user": "110", "display_name": "Alice Phone", "transport": "udp", "registrar": "",
        "options": {"srtp": "off"}, "password": TRICKY_PASSWORD_2
    }));
    let updated = s
        .update_account(&actor(), a, acc.id, &patch.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(updated.id, acc.id);
    assert_eq!(updated.sip_user, "110");
    assert_eq!(updated.display_name, "Alice Phone");
    assert_eq!(updated.transport, Transport::Udp);
    assert_eq!(updated.registrar, "", "an empty registrar clears it");
    assert_eq!(
        updated.auth_user, "a100",
        "fields not in the patch are kept"
    );
    assert_eq!(updated.outbound_proxy, "proxy.example.com");
    assert_eq!(
        Value::Object(updated.options.clone()),
        json!({"srtp": "off"})
    );
    assert_eq!(s.account(a, acc.id).await.unwrap(), updated);
    assert_eq!(
        s.account_password(a, acc.id).await.unwrap().expose(),
        TRICKY_PASSWORD_2
    );

    let patch: SipAccountPatch = input(json!({"auth_user": ""}));
    let updated = s
        .update_account(&actor(), a, acc.id, &patch.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(updated.auth_user, "");
    assert_eq!(
        s.account_password(a, acc.id).await.unwrap().expose(),
        TRICKY_PASSWORD_2,
        "an update without a password keeps it"
    );

    let patch: SipAccountPatch = input(json!({"sip_user": "200"}));
    expect_conflict(
        s.update_account(&actor(), a, acc.id, &patch.validate().unwrap())
            .await,
        "rename onto a taken sip_user",
    );
    assert_eq!(s.account(a, acc.id).await.unwrap().sip_user, "110");

    s.delete_account(&actor(), a, acc.id).await.unwrap();
    expect_not_found(s.account(a, acc.id).await, "deleted account");
    expect_not_found(
        s.account_password(a, acc.id).await,
        "password of deleted account",
    );
    expect_not_found(s.delete_account(&actor(), a, acc.id).await, "second delete");
    expect_not_found(
        s.update_account(&actor(), a, acc.id, &SipAccountPatch::default())
            .await,
        "update of deleted account",
    );
    assert_eq!(
        s.list_accounts(a, None, all()).await.unwrap().items,
        [bob_acc]
    );

    // Deleting a user takes their accounts along.
    s.delete_user(&actor(), a, "bob").await.unwrap();
    assert!(
        s.list_accounts(a, None, all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn account_in_use(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    new_user(s, a, "alice").await;
    let acc = new_account(s, a, "alice", "100", "pw").await;
    let m = mac("001565aabbcc");
    new_device(s, a, json!({"mac": m, "lines": ["100"]})).await;

    expect_conflict(
        s.delete_account(&actor(), a, acc.id).await,
        "delete of an account that is a line",
    );
    assert_eq!(
        s.account(a, acc.id).await.unwrap(),
        acc,
        "the refused delete changes nothing"
    );
    assert_eq!(s.account_password(a, acc.id).await.unwrap().expose(), "pw");
    expect_conflict(
        s.delete_user(&actor(), a, "alice").await,
        "delete of a user whose account is a line",
    );
    s.user(a, "alice").await.unwrap();
    assert_eq!(
        lines(&s.device(a, m).await.unwrap()),
        [(1, "100".to_owned())]
    );

    s.update_device(&actor(), a, m, &device_patch(json!({"lines": []})))
        .await
        .unwrap();
    s.delete_account(&actor(), a, acc.id).await.unwrap();
    expect_not_found(s.account(a, acc.id).await, "account deleted once free");
    s.delete_user(&actor(), a, "alice").await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Devices

pub async fn device_crud(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let b = new_domain(s, "b.example").await.id;
    new_category(s, a, "Desk").await;
    new_user(s, a, "alice").await;
    new_user(s, a, "bob").await;
    let a100 = new_account(s, a, "alice", "100", "pw100").await;
    let a101 = new_account(s, a, "alice", "101", "pw101").await;

    let created = new_device(
        s,
        a,
        json!({
            "mac": "00:15:65:AA:BB:CC", "vendor": "Yealink", "model": "T54W", "category": "Desk",
            "user": "alice", "lines": ["101", "100"], "settings": {"volume": 5}
        }),
    )
    .await;
    let m = mac("001565aabbcc");
    assert_eq!(created.mac, m);
    assert_eq!(created.mac.to_string(), "001565aabbcc");
    assert_eq!(created.vendor, "yealink");
    assert_eq!(created.model, "T54W");
    assert_eq!(created.state, DeviceState::Added);
    assert_eq!(created.category.as_deref(), Some("Desk"));
    assert_eq!(created.user.as_deref(), Some("alice"));
    assert_eq!(
        lines(&created),
        [(1, "101".to_owned()), (2, "100".to_owned())],
        "lines keep the given order"
    );
    assert_eq!(
        created
            .lines
            .iter()
            .map(|l| l.account_id)
            .collect::<Vec<_>>(),
        [a101.id, a100.id]
    );
    assert_eq!(created.first_contact, None);
    assert_eq!(
        Value::Object(created.settings.clone()),
        json!({"volume": 5})
    );
    assert_eq!(s.device(a, m).await.unwrap(), created);
    assert_eq!(
        s.device(a, mac("00-15-65-aa-bb-cc")).await.unwrap(),
        created,
        "any MAC spelling finds it"
    );

    expect_conflict(
        s.create_device(&actor(), a, &device_input(json!({"mac": "001565AABBCC"})))
            .await,
        "same MAC in the domain",
    );
    let msg = expect_conflict(
        s.create_device(&actor(), b, &device_input(json!({"mac": "0015.65aa.bbcc"})))
            .await,
        "same MAC in another domain",
    );
    assert!(
        msg.contains("001565aabbcc"),
        "the conflict names the MAC: {msg}"
    );
    expect_not_found(
        s.device(b, m).await,
        "the refused device in the other domain",
    );

    let patch =
        device_patch(json!({"lines": ["100", "101"], "category": null, "state": "provisioned"}));
    let updated = s.update_device(&actor(), a, m, &patch).await.unwrap();
    assert_eq!(
        lines(&updated),
        [(1, "100".to_owned()), (2, "101".to_owned())]
    );
    assert_eq!(updated.category, None, "null clears the category");
    assert_eq!(updated.state, DeviceState::Provisioned);
    assert_eq!(
        updated.user.as_deref(),
        Some("alice"),
        "fields not in the patch are kept"
    );
    assert_eq!(
        (updated.vendor.as_str(), updated.model.as_str()),
        ("yealink", "T54W")
    );
    assert_eq!(updated.settings, created.settings);
    assert_eq!(
        (updated.id, updated.created_at),
        (created.id, created.created_at)
    );
    assert_eq!(s.device(a, m).await.unwrap(), updated);

    let patch =
        device_patch(json!({"user": "bob", "category": "Desk", "model": "T57W", "lines": ["101"]}));
    let updated = s.update_device(&actor(), a, m, &patch).await.unwrap();
    assert_eq!(updated.user.as_deref(), Some("bob"));
    assert_eq!(updated.category.as_deref(), Some("Desk"));
    assert_eq!(updated.model, "T57W");
    assert_eq!(lines(&updated), [(1, "101".to_owned())]);
    assert_eq!(updated.state, DeviceState::Provisioned);

    let patch = device_patch(json!({"user": null, "lines": [], "state": "disabled"}));
    let updated = s.update_device(&actor(), a, m, &patch).await.unwrap();
    assert_eq!(updated.user, None, "null clears the owner");
    assert!(updated.lines.is_empty());
    assert_eq!(updated.state, DeviceState::Disabled);
    assert_eq!(updated.category.as_deref(), Some("Desk"));
    assert_eq!(s.device(a, m).await.unwrap(), updated);

    s.delete_device(&actor(), a, m).await.unwrap();
    expect_not_found(s.device(a, m).await, "deleted device");
    expect_not_found(s.delete_device(&actor(), a, m).await, "second delete");
    expect_not_found(
        s.update_device(&actor(), a, m, &DevicePatch::default())
            .await,
        "update of deleted device",
    );
    assert!(
        s.list_devices(a, &DeviceFilter::default(), all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // The MAC is free again, in any domain.
    new_device(s, b, json!({"mac": "001565aabbcc"})).await;
}

pub async fn device_references_are_checked(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    new_category(s, a, "Desk").await;
    new_user(s, a, "alice").await;
    new_account(s, a, "alice", "100", "pw").await;
    let m = mac("001565aabbcc");

    let i = expect_invalid(
        s.create_device(
            &actor(),
            a,
            &device_input(json!({"mac": m, "category": "Nope", "user": "alice"})),
        )
        .await,
        "category",
        "unknown category",
    );
    assert!(i.reason.contains("Nope"), "{i}");
    expect_invalid(
        s.create_device(
            &actor(),
            a,
            &device_input(json!({"mac": m, "user": "nobody"})),
        )
        .await,
        "user",
        "unknown user",
    );
    let i = expect_invalid(
        s.create_device(
            &actor(),
            a,
            &device_input(json!({"mac": m, "lines": ["100", "999"]})),
        )
        .await,
        "lines",
        "unknown line account",
    );
    assert!(i.reason.contains("999"), "{i}");
    expect_invalid(
        s.create_device(
            &actor(),
            a,
            &device_input(json!({"mac": m, "lines": ["100", "100"]})),
        )
        .await,
        "lines",
        "repeated line account",
    );
    expect_not_found(
        s.device(a, m).await,
        "nothing is created by a refused create",
    );

    let before = new_device(
        s,
        a,
        json!({"mac": m, "category": "Desk", "user": "alice", "lines": ["100"]}),
    )
    .await;
    for (patch, field) in [
        (json!({"category": "Nope", "state": "disabled"}), "category"),
        (json!({"user": "nobody", "model": "X"}), "user"),
        (
            json!({"lines": ["999"], "state": "disabled", "model": "X"}),
            "lines",
        ),
        (json!({"lines": ["100", "100"]}), "lines"),
    ] {
        let r = s
            .update_device(&actor(), a, m, &device_patch(patch.clone()))
            .await;
        expect_invalid(r, field, &format!("patch {patch}"));
        assert_eq!(
            s.device(a, m).await.unwrap(),
            before,
            "a refused patch {patch} changes nothing"
        );
    }
}

pub async fn device_list_filters_and_pages(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    new_category(s, a, "Desk").await;
    new_category(s, a, "Lab").await;
    new_user(s, a, "alice").await;
    new_user(s, a, "bob").await;
    new_account(s, a, "alice", "100", "pw").await;
    new_account(s, a, "bob", "200", "pw").await;

    let m1 = "001565000001";
    let m2 = "001565000002";
    let m3 = "001565000003";
    let m4 = "001565000004";
    let m5 = "001565000005";
    new_device(
        s,
        a,
        json!({"mac": m1, "category": "Desk", "user": "alice", "lines": ["100", "200"]}),
    )
    .await;
    new_device(
        s,
        a,
        json!({"mac": m2, "category": "Lab", "user": "bob", "lines": ["200"]}),
    )
    .await;
    new_device(s, a, json!({"mac": m3, "category": "Desk", "user": "bob"})).await;
    new_device(s, a, json!({"mac": m4})).await;
    new_device(
        s,
        a,
        json!({"mac": m5, "category": "Desk", "user": "alice"}),
    )
    .await;
    s.update_device(
        &actor(),
        a,
        mac(m5),
        &device_patch(json!({"state": "disabled"})),
    )
    .await
    .unwrap();

    let list = |f: Value| async move {
        let filter: DeviceFilter = input(f);
        macs(&s.list_devices(a, &filter, all()).await.unwrap().items)
    };
    assert_eq!(list(json!({})).await, [m1, m2, m3, m4, m5]);
    assert_eq!(list(json!({"mac": "00:15:65:00:00:02"})).await, [m2]);
    assert_eq!(
        list(json!({"mac": "001565000009"})).await,
        Vec::<String>::new()
    );
    assert_eq!(list(json!({"user": "alice"})).await, [m1, m5]);
    assert_eq!(list(json!({"category": "Desk"})).await, [m1, m3, m5]);
    assert_eq!(list(json!({"state": "disabled"})).await, [m5]);
    assert_eq!(list(json!({"state": "added"})).await, [m1, m2, m3, m4]);
    assert_eq!(
        list(json!({"state": "provisioned"})).await,
        Vec::<String>::new()
    );
    assert_eq!(list(json!({"user": "bob", "category": "Desk"})).await, [m3]);
    assert_eq!(list(json!({"user": "nobody"})).await, Vec::<String>::new());

    // Lists carry each device's lines, in order.
    let all_devices = s
        .list_devices(a, &DeviceFilter::default(), all())
        .await
        .unwrap()
        .items;
    assert_eq!(
        lines(&all_devices[0]),
        [(1, "100".to_owned()), (2, "200".to_owned())]
    );
    assert_eq!(lines(&all_devices[1]), [(1, "200".to_owned())]);
    assert!(all_devices[2].lines.is_empty());
    for d in &all_devices {
        assert_eq!(
            &s.device(a, d.mac).await.unwrap(),
            d,
            "a listed device equals the one fetched"
        );
    }

    let everything = DeviceFilter::default();
    let (items, sizes) = collect_pages(2, |p| s.list_devices(a, &everything, p)).await;
    assert_eq!(macs(&items), [m1, m2, m3, m4, m5]);
    assert_eq!(sizes, [2, 2, 1]);
    let desk: DeviceFilter = input(json!({"category": "Desk"}));
    let (items, sizes) = collect_pages(2, |p| s.list_devices(a, &desk, p)).await;
    assert_eq!(macs(&items), [m1, m3, m5]);
    assert_eq!(sizes, [2, 1]);
}

// ---------------------------------------------------------------------------------------
// Tenants

pub async fn tenant_isolation(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let b = new_domain(s, "b.example").await.id;
    new_category(s, a, "Desk").await;
    let new: NewUser = input(json!({"username": "alice"}));
    s.create_user(&actor(), a, &new.validate().unwrap(), Some("hash-of-alice"))
        .await
        .unwrap();
    let acc = new_account(s, a, "alice", "100", "alice-pw").await;
    let m = mac("001565aabbcc");
    let dev = new_device(
        s,
        a,
        json!({"mac": m, "category": "Desk", "user": "alice", "lines": ["100"]}),
    )
    .await;
    // B has its own objects, so its lists are not trivially empty.
    new_category(s, b, "Lab").await;
    new_user(s, b, "carol").await;
    new_account(s, b, "carol", "900", "carol-pw").await;
    new_device(
        s,
        b,
        json!({"mac": "001565bbbbbb", "category": "Lab", "user": "carol", "lines": ["900"]}),
    )
    .await;

    expect_not_found(s.category(b, "Desk").await, "category");
    expect_not_found(
        s.update_category(&actor(), b, "Desk", &CategoryPatch::default())
            .await,
        "update_category",
    );
    expect_not_found(
        s.delete_category(&actor(), b, "Desk").await,
        "delete_category",
    );
    expect_not_found(s.user(b, "alice").await, "user");
    let patch: UserPatch = input(json!({"display_name": "Mallory"}));
    expect_not_found(
        s.update_user(&actor(), b, "alice", &patch.validate().unwrap(), Some("x"))
            .await,
        "update_user",
    );
    expect_not_found(s.delete_user(&actor(), b, "alice").await, "delete_user");
    expect_not_found(s.user_password_hash(b, "alice").await, "user_password_hash");
    expect_not_found(
        s.create_account(&actor(), b, "alice", &account_input("555", "x"))
            .await,
        "create_account for A's user",
    );
    expect_not_found(s.account(b, acc.id).await, "account");
    let patch: SipAccountPatch = input(json!({"password": "stolen"}));
    expect_not_found(
        s.update_account(&actor(), b, acc.id, &patch.validate().unwrap())
            .await,
        "update_account",
    );
    expect_not_found(
        s.delete_account(&actor(), b, acc.id).await,
        "delete_account",
    );
    expect_not_found(s.account_password(b, acc.id).await, "account_password");
    expect_not_found(s.device(b, m).await, "device");
    expect_not_found(
        s.update_device(&actor(), b, m, &device_patch(json!({"state": "disabled"})))
            .await,
        "update_device",
    );
    expect_not_found(s.delete_device(&actor(), b, m).await, "delete_device");

    let cats: Vec<String> = s
        .list_categories(b, all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(cats, ["Lab"]);
    let users: Vec<String> = s
        .list_users(b, None, all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(users, ["carol"]);
    let accounts: Vec<String> = s
        .list_accounts(b, None, all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.sip_user)
        .collect();
    assert_eq!(accounts, ["900"]);
    assert!(
        s.list_accounts(b, Some("alice"), all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        macs(
            &s.list_devices(b, &DeviceFilter::default(), all())
                .await
                .unwrap()
                .items
        ),
        ["001565bbbbbb"]
    );
    for f in [
        json!({"mac": m}),
        json!({"user": "alice"}),
        json!({"category": "Desk"}),
    ] {
        let filter: DeviceFilter = input(f.clone());
        assert!(
            s.list_devices(b, &filter, all())
                .await
                .unwrap()
                .items
                .is_empty(),
            "B's devices with {f}"
        );
    }
    let export = csv::write(&s.export(b, true).await.unwrap());
    for secret in ["alice", "alice-pw", "001565aabbcc"] {
        assert!(
            !export.contains(secret),
            "B's export holds nothing of A ({secret}):\n{export}"
        );
    }

    // B cannot point its devices at A's objects.
    let n = mac("001565cccccc");
    expect_invalid(
        s.create_device(
            &actor(),
            b,
            &device_input(json!({"mac": n, "lines": ["100"]})),
        )
        .await,
        "lines",
        "A's account as B's line",
    );
    expect_invalid(
        s.create_device(
            &actor(),
            b,
            &device_input(json!({"mac": n, "user": "alice"})),
        )
        .await,
        "user",
        "A's user as owner",
    );
    expect_invalid(
        s.create_device(
            &actor(),
            b,
            &device_input(json!({"mac": n, "category": "Desk"})),
        )
        .await,
        "category",
        "A's category",
    );
    let bm = mac("001565bbbbbb");
    expect_invalid(
        s.update_device(
            &actor(),
            b,
            bm,
            &device_patch(json!({"lines": ["900", "100"]})),
        )
        .await,
        "lines",
        "patch with A's account",
    );
    assert_eq!(
        lines(&s.device(b, bm).await.unwrap()),
        [(1, "900".to_owned())]
    );

    // A is untouched by all of it.
    assert_eq!(s.device(a, m).await.unwrap(), dev);
    assert_eq!(s.account(a, acc.id).await.unwrap(), acc);
    assert_eq!(
        s.account_password(a, acc.id).await.unwrap().expose(),
        "alice-pw"
    );
    assert_eq!(
        s.user_password_hash(a, "alice").await.unwrap().as_deref(),
        Some("hash-of-alice")
    );
    assert_eq!(s.user(a, "alice").await.unwrap().display_name, "");
    s.category(a, "Desk").await.unwrap();
}

/// A deleted domain's data, tokens and audit trail must not reach a domain created later,
/// even if the database hands out the deleted domain's id again.
pub async fn deleted_domain_leaves_nothing_behind(s: Arc<dyn Store>) {
    let s = &*s;
    let old = new_domain(s, "old.example").await;
    new_user(s, old.id, "alice").await;
    new_account(s, old.id, "alice", "100", "old-secret").await;
    new_device(
        s,
        old.id,
        json!({"mac": "001565aabbcc", "user": "alice", "lines": ["100"]}),
    )
    .await;
    s.create_token(
        &actor(),
        "old admin",
        Role::DomainAdmin,
        Some(old.id),
        "hash-old",
        "pv_old",
    )
    .await
    .unwrap();
    s.delete_domain(&actor(), old.id).await.unwrap();
    assert!(
        s.token_by_hash("hash-old").await.unwrap().is_none(),
        "a deleted domain's tokens stop working"
    );

    let new = new_domain(s, "new.example").await;
    assert!(
        s.list_users(new.id, None, all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.list_accounts(new.id, None, all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.list_devices(new.id, &DeviceFilter::default(), all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.list_tokens(Some(new.id), all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let audit = s.list_audit(Some(new.id), all()).await.unwrap().items;
    let foreign: Vec<_> = audit
        .iter()
        .filter(|e| e.domain.as_deref() != Some("new.example"))
        .collect();
    assert!(
        foreign.is_empty(),
        "the new domain's audit log shows another domain's entries: {foreign:#?}"
    );
    assert_eq!(
        audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["domain.create"]
    );

    // Operators still see the old domain's history, under its name.
    let everything = s.list_audit(None, all()).await.unwrap().items;
    let old_actions: Vec<&str> = everything
        .iter()
        .filter(|e| e.domain.as_deref() == Some("old.example"))
        .map(|e| e.action.as_str())
        .collect();
    for action in [
        "domain.create",
        "user.create",
        "account.create",
        "device.create",
        "token.create",
        "domain.delete",
    ] {
        assert!(
            old_actions.contains(&action),
            "operator audit lacks {action} of the deleted domain: {old_actions:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Settings

pub async fn settings_round_trip(s: Arc<dyn Store>) {
    let s = &*s;
    let nested = json!({
        "ntp": {"servers": ["0.pool.ntp.org", "1.pool.ntp.org"], "timezone": "Europe/Berlin"},
        "codecs": {"g722": {"enabled": true, "priority": 1}, "opus": {"enabled": false}},
        "volume": 5, "ratio": 1.5, "negative": -42, "big": 9_007_199_254_740_993_u64,
        "label": "Büro \"2\" <x> & 'y' 🎉", "empty": {}, "list": [1, "two", {"three": [3]}],
        "lang": null
    });
    let replacement = json!({"only": {"this": true}});

    let new: NewDomain = input(json!({"name": "a.example", "settings": nested}));
    let d = s
        .create_domain(&actor(), &new.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(Value::Object(d.settings), nested);
    assert_eq!(
        Value::Object(s.domain("a.example").await.unwrap().settings),
        nested
    );
    let a = d.id;

    let new: NewCategory = input(json!({"name": "Desk", "settings": nested}));
    s.create_category(&actor(), a, &new.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(
        Value::Object(s.category(a, "Desk").await.unwrap().settings),
        nested
    );

    let new: NewUser = input(json!({"username": "alice", "settings": nested}));
    s.create_user(&actor(), a, &new.validate().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        Value::Object(s.user(a, "alice").await.unwrap().settings),
        nested
    );

    let new: NewSipAccount = input(json!({"sip_user": "100", "password": "pw", "options": nested}));
    let acc = s
        .create_account(&actor(), a, "alice", &new.validate().unwrap())
        .await
        .unwrap();
    assert_eq!(
        Value::Object(s.account(a, acc.id).await.unwrap().options),
        nested
    );

    let m = mac("001565aabbcc");
    new_device(s, a, json!({"mac": m, "settings": nested})).await;
    assert_eq!(
        Value::Object(s.device(a, m).await.unwrap().settings),
        nested
    );
    let listed = s
        .list_devices(a, &DeviceFilter::default(), all())
        .await
        .unwrap()
        .items;
    assert_eq!(Value::Object(listed[0].settings.clone()), nested);

    // A patch replaces a layer as a whole.
    let patch = DomainPatch {
        settings: Some(obj(replacement.clone())),
        ..Default::default()
    };
    s.update_domain(&actor(), a, &patch).await.unwrap();
    assert_eq!(
        Value::Object(s.domain_by_id(a).await.unwrap().settings),
        replacement
    );
    let patch = CategoryPatch {
        settings: Some(obj(replacement.clone())),
        ..Default::default()
    };
    s.update_category(&actor(), a, "Desk", &patch)
        .await
        .unwrap();
    assert_eq!(
        Value::Object(s.category(a, "Desk").await.unwrap().settings),
        replacement
    );
    let patch = UserPatch {
        settings: Some(obj(replacement.clone())),
        ..Default::default()
    };
    s.update_user(&actor(), a, "alice", &patch, None)
        .await
        .unwrap();
    assert_eq!(
        Value::Object(s.user(a, "alice").await.unwrap().settings),
        replacement
    );
    let patch = SipAccountPatch {
        options: Some(obj(replacement.clone())),
        ..Default::default()
    };
    s.update_account(&actor(), a, acc.id, &patch).await.unwrap();
    assert_eq!(
        Value::Object(s.account(a, acc.id).await.unwrap().options),
        replacement
    );
    let patch = DevicePatch {
        settings: Some(obj(replacement.clone())),
        ..Default::default()
    };
    s.update_device(&actor(), a, m, &patch).await.unwrap();
    assert_eq!(
        Value::Object(s.device(a, m).await.unwrap().settings),
        replacement
    );

    // An empty layer is a layer too.
    let patch = DevicePatch {
        settings: Some(obj(json!({}))),
        ..Default::default()
    };
    s.update_device(&actor(), a, m, &patch).await.unwrap();
    assert_eq!(
        Value::Object(s.device(a, m).await.unwrap().settings),
        json!({})
    );
}

// ---------------------------------------------------------------------------------------
// Tokens and audit

pub async fn tokens(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let b = new_domain(s, "b.example").await.id;

    let op = s
        .create_token(&actor(), "ops", Role::Operator, None, "hash-op", "pv_op1")
        .await
        .unwrap();
    assert_eq!(
        (
            op.name.as_str(),
            op.role,
            op.domain.as_deref(),
            op.hint.as_str()
        ),
        ("ops", Role::Operator, None, "pv_op1")
    );
    assert_eq!(op.revoked_at, None);
    let ta = s
        .create_token(
            &actor(),
            "a admin",
            Role::DomainAdmin,
            Some(a),
            "hash-a",
            "pv_a1",
        )
        .await
        .unwrap();
    assert_eq!(
        (ta.role, ta.domain.as_deref()),
        (Role::DomainAdmin, Some("a.example"))
    );
    let tb = s
        .create_token(
            &actor(),
            "b admin",
            Role::DomainAdmin,
            Some(b),
            "hash-b",
            "pv_b1",
        )
        .await
        .unwrap();

    let g = s
        .token_by_hash("hash-op")
        .await
        .unwrap()
        .expect("operator token found");
    assert_eq!(g.token, op);
    assert_eq!(g.domain, None);
    let g = s
        .token_by_hash("hash-a")
        .await
        .unwrap()
        .expect("domain token found");
    assert_eq!(g.token, ta);
    assert_eq!(g.domain, Some(a));
    assert_eq!(
        s.token_by_hash("hash-b")
            .await
            .unwrap()
            .expect("B's token")
            .domain,
        Some(b)
    );
    assert!(s.token_by_hash("hash-unknown").await.unwrap().is_none());

    assert_eq!(
        s.list_tokens(Some(a), all()).await.unwrap().items,
        std::slice::from_ref(&ta)
    );
    assert_eq!(
        s.list_tokens(Some(b), all()).await.unwrap().items,
        std::slice::from_ref(&tb)
    );
    assert_eq!(
        s.list_tokens(None, all()).await.unwrap().items,
        [op.clone(), ta.clone(), tb.clone()]
    );
    let (paged, sizes) = collect_pages(2, |p| s.list_tokens(None, p)).await;
    assert_eq!(paged, [op.clone(), ta.clone(), tb.clone()]);
    assert_eq!(sizes, [2, 1]);

    expect_not_found(
        s.revoke_token(&actor(), Some(b), ta.id).await,
        "revoke of A's token in B's scope",
    );
    expect_not_found(
        s.revoke_token(&actor(), Some(a), op.id).await,
        "revoke of the operator token in A's scope",
    );
    expect_not_found(
        s.revoke_token(&actor(), None, tb.id + 1000).await,
        "revoke of an unknown token",
    );
    assert!(
        s.token_by_hash("hash-a").await.unwrap().is_some(),
        "a refused revoke leaves the token working"
    );
    assert!(s.token_by_hash("hash-op").await.unwrap().is_some());

    let revoked = s.revoke_token(&actor(), Some(a), ta.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.id, ta.id);
    assert!(
        s.token_by_hash("hash-a").await.unwrap().is_none(),
        "a revoked token no longer resolves"
    );
    let listed = s.list_tokens(Some(a), all()).await.unwrap().items;
    assert_eq!(
        listed,
        std::slice::from_ref(&revoked),
        "a revoked token is still listed, as revoked"
    );
    let again = s.revoke_token(&actor(), Some(a), ta.id).await.unwrap();
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "revoking twice keeps the first time"
    );

    s.revoke_token(&actor(), None, op.id).await.unwrap();
    assert!(s.token_by_hash("hash-op").await.unwrap().is_none());
    assert!(
        s.token_by_hash("hash-b").await.unwrap().is_some(),
        "other tokens keep working"
    );
}

pub async fn audit_device_history(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let b = new_domain(s, "b.example").await.id;
    new_device(s, b, json!({"mac": "001565bbbbbb"})).await;
    let who = Actor("token:7 ci-bot".into());
    let m = mac("001565aabbcc");
    let target = m.to_string();

    s.create_device(
        &who,
        a,
        &device_input(json!({"mac": "00:15:65:AA:BB:CC", "model": "T54W"})),
    )
    .await
    .unwrap();
    s.update_device(&who, a, m, &device_patch(json!({"state": "provisioned"})))
        .await
        .unwrap();
    s.delete_device(&who, a, m).await.unwrap();

    let entries = s.list_audit(Some(a), all()).await.unwrap().items;
    assert!(
        entries.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    let device_entries: Vec<&AuditEntry> = entries.iter().filter(|e| e.target == target).collect();
    let actions: Vec<&str> = device_entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["device.delete", "device.update", "device.create"]);
    for e in &device_entries {
        assert_eq!(e.actor, "token:7 ci-bot");
        assert_eq!(e.domain.as_deref(), Some("a.example"));
    }
    let (del, upd, cre) = (device_entries[0], device_entries[1], device_entries[2]);
    assert!(cre.before.is_none());
    let after = cre.after.as_ref().expect("create records the new device");
    assert_eq!(
        (
            after["mac"].as_str(),
            after["model"].as_str(),
            after["state"].as_str()
        ),
        (Some("001565aabbcc"), Some("T54W"), Some("added"))
    );
    assert_eq!(
        upd.before.as_ref().expect("update records before")["state"],
        "added"
    );
    assert_eq!(
        upd.after.as_ref().expect("update records after")["state"],
        "provisioned"
    );
    assert_eq!(
        del.before.as_ref().expect("delete records the device")["state"],
        "provisioned"
    );
    assert!(del.after.is_none());
    assert!(cre.at <= upd.at && upd.at <= del.at);

    let in_b = s.list_audit(Some(b), all()).await.unwrap().items;
    assert!(!in_b.is_empty());
    assert!(
        in_b.iter()
            .all(|e| e.target != target && e.domain.as_deref() == Some("b.example")),
        "B's audit log shows only B: {in_b:#?}"
    );
    let everything = s.list_audit(None, all()).await.unwrap().items;
    assert_eq!(
        everything.iter().filter(|e| e.target == target).count(),
        3,
        "operators see all"
    );
    assert!(everything.len() > entries.len());

    let (paged, sizes) = collect_pages(2, |p| s.list_audit(Some(a), p)).await;
    assert_eq!(paged, entries, "pages newest first, every entry once");
    assert!(sizes.len() >= 2);
    let (paged, _) = collect_pages(3, |p| s.list_audit(None, p)).await;
    assert_eq!(paged, everything);
}

pub async fn audit_never_holds_secrets(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let hash1 = "$argon2id$v=19$m=19456,t=2,p=1$SECRETSALT1$SECRETHASH1";
    let hash2 = "$argon2id$v=19$m=19456,t=2,p=1$SECRETSALT2$SECRETHASH2";
    let new: NewUser = input(json!({"username": "alice", "password": "portal-pw-123"}));
    s.create_user(&actor(), a, &new.validate().unwrap(), Some(hash1))
        .await
        .unwrap();
    s.update_user(&actor(), a, "alice", &UserPatch::default(), Some(hash2))
        .await
        .unwrap();

    let new: NewSipAccount = input(json!({"sip_user": "100", "password": TRICKY_PASSWORD}));
    let acc = s
        .create_account(&actor(), a, "alice", &new.validate().unwrap())
        .await
        .unwrap();
    let patch: SipAccountPatch =
        input(json!({"password": TRICKY_PASSWORD_2, "display_name": "Alice"}));
    s.update_account(&actor(), a, acc.id, &patch.validate().unwrap())
        .await
        .unwrap();
    import_csv(
        s,
        a,
        "username,sip_user,sip_password\nalice,101,Imp0rted-pw\nalice,100,Imp0rted-pw2\n",
    )
    .await
    .unwrap();
    s.create_token(
        &actor(),
        "t",
        Role::DomainAdmin,
        Some(a),
        "TOKENHASH-secret",
        "pv_x",
    )
    .await
    .unwrap();
    s.delete_account(&actor(), a, acc.id).await.unwrap();

    let entries = s.list_audit(None, all()).await.unwrap().items;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "user.create",
        "user.update",
        "account.create",
        "account.update",
        "account.delete",
        "import",
        "token.create",
    ] {
        assert!(actions.contains(&action), "no {action} entry: {actions:?}");
    }
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        "portal-pw-123",
        "SECRETHASH1",
        "SECRETHASH2",
        "Zq7-s3cr3t",
        "Xv9-n3w",
        "Imp0rted-pw",
        "TOKENHASH",
    ] {
        assert!(
            !text.contains(secret),
            "the audit log holds the secret {secret:?}: {text}"
        );
    }
    // But it says that the password changed.
    let update = entries
        .iter()
        .find(|e| e.action == "account.update")
        .unwrap();
    assert_eq!(update.after.as_ref().unwrap()["display_name"], "Alice");
    assert_ne!(update.before, update.after);
}

// ---------------------------------------------------------------------------------------
// Import and export

const IMPORT: &str = "\
username,display_name,email,sip_user,auth_user,sip_password,account_display_name,registrar,outbound_proxy,transport,mac,vendor,model,category,line
alice,Alice A,alice@example.com,100,,pw-100,Alice desk,sip.example.com,,udp,00:15:65:aa:bb:01,Yealink,T54W,Desk,2
alice,,,101,,pw-101,Alice hot,sip.example.com,,tls,001565aabb01,,,,1
bob,Bob B,,200,auth200,pw-200,,,,,001565aabb02,snom,D785,,
bob,,,201,,pw-201,,,,,001565aabb02,,,,
carol,Carol C,carol@example.com,,,,,,,,,,,,
";

pub async fn import_creates_then_changes_nothing(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    new_category(s, a, "Desk").await;

    let summary = import_csv(s, a, IMPORT).await.unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            users_created: 3,
            accounts_created: 4,
            devices_created: 2,
            ..Default::default()
        }
    );

    let users = s.list_users(a, None, all()).await.unwrap().items;
    let u: Vec<(&str, &str, &str, bool)> = users
        .iter()
        .map(|u| {
            (
                u.username.as_str(),
                u.display_name.as_str(),
                u.email.as_str(),
                u.has_password,
            )
        })
        .collect();
    assert_eq!(
        u,
        [
            ("alice", "Alice A", "alice@example.com", false),
            ("bob", "Bob B", "", false),
            ("carol", "Carol C", "carol@example.com", false)
        ]
    );
    let accounts = s.list_accounts(a, None, all()).await.unwrap().items;
    let acc = account_fields(&accounts);
    assert_eq!(
        acc,
        [
            (
                "alice",
                "100",
                "",
                "Alice desk",
                "sip.example.com",
                Transport::Udp
            ),
            (
                "alice",
                "101",
                "",
                "Alice hot",
                "sip.example.com",
                Transport::Tls
            ),
            ("bob", "200", "auth200", "", "", Transport::Udp),
            ("bob", "201", "", "", "", Transport::Udp),
        ]
    );
    for x in &accounts {
        assert_eq!(
            s.account_password(a, x.id).await.unwrap().expose(),
            format!("pw-{}", x.sip_user)
        );
    }
    let d1 = s.device(a, mac("001565aabb01")).await.unwrap();
    assert_eq!((d1.vendor.as_str(), d1.model.as_str()), ("yealink", "T54W"));
    assert_eq!(
        (d1.category.as_deref(), d1.user.as_deref()),
        (Some("Desk"), Some("alice"))
    );
    assert_eq!(
        lines(&d1),
        [(1, "101".to_owned()), (2, "100".to_owned())],
        "the line column decides positions"
    );
    assert_eq!(d1.state, DeviceState::Added);
    let d2 = s.device(a, mac("001565aabb02")).await.unwrap();
    assert_eq!((d2.vendor.as_str(), d2.model.as_str()), ("snom", "D785"));
    assert_eq!(
        (d2.category.as_deref(), d2.user.as_deref()),
        (None, Some("bob"))
    );
    assert_eq!(
        lines(&d2),
        [(1, "200".to_owned()), (2, "201".to_owned())],
        "without line numbers, rows give the order"
    );

    let audit = s.list_audit(Some(a), all()).await.unwrap().items;
    assert_eq!(audit[0].action, "import");
    assert_eq!(audit[0].after.as_ref().unwrap()["devices_created"], 2);

    // Importing the same file again creates nothing and changes nothing.
    let again = import_csv(s, a, IMPORT).await.unwrap();
    assert_eq!(
        (
            again.users_created,
            again.accounts_created,
            again.devices_created
        ),
        (0, 0, 0),
        "{again:?}"
    );
    assert_eq!(again, ImportSummary::default(), "nothing counts as changed");
    assert_eq!(s.list_users(a, None, all()).await.unwrap().items, users);
    let accounts_again = s.list_accounts(a, None, all()).await.unwrap().items;
    let acc_again = account_fields(&accounts_again);
    assert_eq!(acc_again, acc);
    for x in &accounts_again {
        assert_eq!(
            s.account_password(a, x.id).await.unwrap().expose(),
            format!("pw-{}", x.sip_user)
        );
    }
    let d1_again = s.device(a, mac("001565aabb01")).await.unwrap();
    assert_eq!(
        (
            d1_again.id,
            lines(&d1_again),
            d1_again.category,
            d1_again.user
        ),
        (d1.id, lines(&d1), d1.category, d1.user)
    );
    assert_eq!(
        lines(&s.device(a, mac("001565aabb02")).await.unwrap()),
        lines(&d2)
    );
    assert_eq!(
        s.list_devices(a, &DeviceFilter::default(), all())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // Empty cells change nothing; given cells update.
    let change = "username,display_name,sip_user,transport\nalice,Alice New,,\nbob,,200,tls\n";
    let summary = import_csv(s, a, change).await.unwrap();
    assert_eq!(
        (summary.users_updated, summary.accounts_updated),
        (1, 1),
        "{summary:?}"
    );
    assert_eq!(s.user(a, "alice").await.unwrap().display_name, "Alice New");
    assert_eq!(s.user(a, "alice").await.unwrap().email, "alice@example.com");
    let acc200 = account_by_sip_user(s, a, "200").await;
    assert_eq!(
        (acc200.transport, acc200.auth_user.as_str()),
        (Transport::Tls, "auth200")
    );
    assert_eq!(
        s.account_password(a, acc200.id).await.unwrap().expose(),
        "pw-200"
    );
}

pub async fn import_is_all_or_nothing(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    new_category(s, a, "Desk").await;
    let new: NewUser = input(json!({"username": "ivy", "display_name": "Ivy Old"}));
    s.create_user(&actor(), a, &new.validate().unwrap(), None)
        .await
        .unwrap();
    let audit_before = s.list_audit(Some(a), all()).await.unwrap().items;

    let text = "\
username,display_name,sip_user,sip_password,mac,category
dave,Dave,300,pw300,,
ivy,Ivy New,,,,
erin,,,,001565aabb10,Nope
frank,,400,,,
gina,,500,pw500,001565aabb11,Desk
";
    let errors = match import_csv(s, a, text).await {
        Err(StoreError::Rows(errors)) => errors,
        other => panic!("expected row errors, got {other:?}"),
    };
    let lines_of: Vec<u64> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines_of, [4, 5], "{errors:#?}");
    assert!(
        errors[0].reason.starts_with("category") && errors[0].reason.contains("Nope"),
        "{}",
        errors[0].reason
    );
    assert!(
        errors[1].reason.starts_with("sip_password") && errors[1].reason.contains("400"),
        "{}",
        errors[1].reason
    );

    for user in ["dave", "erin", "frank", "gina"] {
        expect_not_found(
            s.user(a, user).await,
            &format!("user {user} of a refused import"),
        );
    }
    assert_eq!(
        s.user(a, "ivy").await.unwrap().display_name,
        "Ivy Old",
        "a refused import changes nothing"
    );
    assert!(
        s.list_accounts(a, None, all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.list_devices(a, &DeviceFilter::default(), all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        s.list_audit(Some(a), all()).await.unwrap().items,
        audit_before,
        "a refused import leaves no audit entry"
    );

    // The same file with the bad rows fixed goes in whole.
    let fixed = text
        .replace("Nope", "Desk")
        .replace("frank,,400,,,", "frank,,400,pw400,,");
    let summary = import_csv(s, a, &fixed).await.unwrap();
    assert_eq!(
        (
            summary.users_created,
            summary.users_updated,
            summary.accounts_created,
            summary.devices_created
        ),
        (4, 1, 3, 2)
    );
}

pub async fn import_refuses_mac_of_other_domain(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let b = new_domain(s, "b.example").await.id;
    new_user(s, b, "owner").await;
    let theirs = new_device(
        s,
        b,
        json!({"mac": "001565aabb09", "model": "T54W", "user": "owner"}),
    )
    .await;

    let text = "username,sip_user,sip_password,mac,model\ngina,500,pw500,,\nhank,,,00:15:65:AA:BB:09,D785\n";
    let errors = match import_csv(s, a, text).await {
        Err(StoreError::Rows(errors)) => errors,
        other => panic!("expected row errors, got {other:?}"),
    };
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].line, 3);
    assert!(
        errors[0].reason.starts_with("mac") && errors[0].reason.contains("001565aabb09"),
        "{}",
        errors[0].reason
    );

    assert_eq!(
        s.device(b, mac("001565aabb09")).await.unwrap(),
        theirs,
        "the other domain's device is untouched"
    );
    expect_not_found(
        s.device(a, mac("001565aabb09")).await,
        "device in the importing domain",
    );
    expect_not_found(s.user(a, "gina").await, "user from a good row");
    expect_not_found(s.user(a, "hank").await, "user from the bad row");
}

const ROUND_TRIP: &str = "\
username,display_name,email,sip_user,auth_user,sip_password,account_display_name,registrar,outbound_proxy,transport,mac,vendor,model,category,line
alice,\"Doe, \"\"Alice\"\"\",alice@example.com,100,a100,\"p,w\"\"<&>ü€ 🎉\",Alice,sip.example.com:5061,proxy.example.com,tls,001565aabb01,Yealink,T54W,Desk,
alice,,,+4930123,,'=pw2,=SUM(A1),sip.example.com,,udp,001565aabb01,,,,
bob,,,200,,pw200,,,,tcp,,,,,
carol,Carol,,,,,,,,,,,,,
,,,,,,,,,,001565aabb03,snom,D785,Desk,
";

pub async fn export_round_trip(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    new_category(s, a, "Desk").await;
    import_csv(s, a, ROUND_TRIP).await.unwrap();
    // Objects made through the API export too.
    new_device(
        s,
        a,
        json!({"mac": "001565aabb04", "user": "bob", "model": "T31"}),
    )
    .await;
    new_account(s, a, "carol", "300", "carol pw").await;

    let a100 = account_by_sip_user(s, a, "100").await;
    assert_eq!(
        s.account_password(a, a100.id).await.unwrap().expose(),
        "p,w\"<&>ü€ 🎉"
    );
    let plus = account_by_sip_user(s, a, "+4930123").await;
    assert_eq!(plus.display_name, "=SUM(A1)");
    assert_eq!(
        s.account_password(a, plus.id).await.unwrap().expose(),
        "=pw2"
    );
    let orphan = s.device(a, mac("001565aabb03")).await.unwrap();
    assert_eq!(
        (
            orphan.user.as_deref(),
            orphan.lines.len(),
            orphan.category.as_deref()
        ),
        (None, 0, Some("Desk"))
    );

    let rows_a = s.export(a, true).await.unwrap();
    // alice ×2, bob, carol (one account) and the devices: aabb01 + 2 lines, aabb03, aabb04.
    assert_eq!(rows_a.len(), 9, "{rows_a:#?}");
    assert!(
        rows_a
            .iter()
            .any(|r| r.get("sip_user") == "100" && r.get("sip_password") == "p,w\"<&>ü€ 🎉")
    );
    assert!(
        rows_a
            .iter()
            .any(|r| r.get("sip_user") == "300" && r.get("sip_password") == "carol pw")
    );
    let orphan_rows: Vec<_> = rows_a
        .iter()
        .filter(|r| r.get("mac") == "001565aabb03")
        .collect();
    assert_eq!(orphan_rows.len(), 1);
    assert_eq!(
        (
            orphan_rows[0].get("username"),
            orphan_rows[0].get("sip_user")
        ),
        ("", "")
    );

    let without = s.export(a, false).await.unwrap();
    assert_eq!(without.len(), rows_a.len());
    for (i, (w, r)) in without.iter().zip(&rows_a).enumerate() {
        assert_eq!(
            w.get("sip_password"),
            "",
            "row {i} of an export without passwords has one"
        );
        let mut r = r.clone();
        r.set("sip_password", "");
        assert_eq!(*w, r, "row {i} differs beyond the password");
    }

    let text = csv::write(&rows_a);
    let plan = csv::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("an export does not parse: {e:?}\n{text}"));
    // MACs are unique in the installation: the devices move, so the old domain goes first.
    s.delete_domain(&actor(), a).await.unwrap();
    let b = new_domain(s, "b.example").await.id;
    new_category(s, b, "Desk").await;
    let summary = s.import(&actor(), b, &plan).await.unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            users_created: 3,
            accounts_created: 4,
            devices_created: 3,
            ..Default::default()
        }
    );

    let rows_b = s.export(b, true).await.unwrap();
    assert_eq!(rows_b.len(), rows_a.len(), "{rows_b:#?}");
    for (i, (rb, ra)) in rows_b.iter().zip(&rows_a).enumerate() {
        assert_eq!(rb, ra, "row {i} differs after the round trip");
    }
    assert_eq!(csv::write(&rows_b), text);

    let orphan = s.device(b, mac("001565aabb03")).await.unwrap();
    assert_eq!(
        (
            orphan.user.as_deref(),
            orphan.lines.len(),
            orphan.category.as_deref()
        ),
        (None, 0, Some("Desk"))
    );
    assert_eq!(
        (orphan.vendor.as_str(), orphan.model.as_str()),
        ("snom", "D785")
    );
    let d1 = s.device(b, mac("001565aabb01")).await.unwrap();
    assert_eq!(
        lines(&d1),
        [(1, "100".to_owned()), (2, "+4930123".to_owned())]
    );
    assert_eq!(d1.user.as_deref(), Some("alice"));
    let b100 = account_by_sip_user(s, b, "100").await;
    assert_eq!(
        s.account_password(b, b100.id).await.unwrap().expose(),
        "p,w\"<&>ü€ 🎉"
    );
    assert_eq!(
        (
            b100.auth_user.as_str(),
            b100.outbound_proxy.as_str(),
            b100.transport
        ),
        ("a100", "proxy.example.com", Transport::Tls)
    );
    assert_eq!(
        s.user(b, "alice").await.unwrap().display_name,
        "Doe, \"Alice\""
    );
}

// ---------------------------------------------------------------------------------------
// Installation

pub async fn meta(s: Arc<dyn Store>) {
    let s = &*s;
    s.ping().await.unwrap();
    assert_eq!(s.meta_get("installation_id").await.unwrap(), None);
    assert!(s.meta_init("installation_id", "first").await.unwrap());
    assert_eq!(
        s.meta_get("installation_id").await.unwrap().as_deref(),
        Some("first")
    );
    assert!(
        !s.meta_init("installation_id", "second").await.unwrap(),
        "a set key is not set again"
    );
    assert_eq!(
        s.meta_get("installation_id").await.unwrap().as_deref(),
        Some("first")
    );
    assert!(s.meta_init("other", "x").await.unwrap());
    assert_eq!(s.meta_get("other").await.unwrap().as_deref(), Some("x"));
    assert_eq!(
        s.meta_get("installation_id").await.unwrap().as_deref(),
        Some("first")
    );
}

pub async fn concurrent_creates_of_distinct_macs(s: Arc<dyn Store>) {
    let a = new_domain(&*s, "a.example").await.id;
    new_category(&*s, a, "Desk").await;
    new_user(&*s, a, "alice").await;
    new_account(&*s, a, "alice", "100", "pw").await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let s = Arc::clone(&s);
            let new = device_input(json!({"mac": format!("0015650000{i:02x}"), "category": "Desk", "user": "alice", "lines": ["100"]}));
            tokio::spawn(async move { s.create_device(&actor(), a, &new).await })
        })
        .collect();
    for t in tasks {
        let device = t.await.expect("task").expect("every create succeeds");
        assert_eq!(lines(&device), [(1, "100".to_owned())]);
    }
    let listed = s
        .list_devices(a, &DeviceFilter::default(), all())
        .await
        .unwrap()
        .items;
    let mut seen = macs(&listed);
    seen.sort();
    let expected: Vec<String> = (0..10).map(|i| format!("0015650000{i:02x}")).collect();
    assert_eq!(seen, expected);
    assert!(
        listed
            .iter()
            .all(|d| d.lines.len() == 1 && d.category.as_deref() == Some("Desk"))
    );
    let audit = s.list_audit(Some(a), all()).await.unwrap().items;
    assert_eq!(
        audit.iter().filter(|e| e.action == "device.create").count(),
        10
    );
}

pub async fn concurrent_creates_of_one_mac(s: Arc<dyn Store>) {
    let a = new_domain(&*s, "a.example").await.id;
    let b = new_domain(&*s, "b.example").await.id;
    new_user(&*s, a, "alice").await;
    new_account(&*s, a, "alice", "100", "pw").await;
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let s = Arc::clone(&s);
            // Racing from two domains: the MAC is unique across the installation.
            let (d, new) = if i % 2 == 0 {
                (
                    a,
                    device_input(json!({"mac": "001565aabbcc", "user": "alice", "lines": ["100"]})),
                )
            } else {
                (b, device_input(json!({"mac": "001565aabbcc"})))
            };
            tokio::spawn(async move { s.create_device(&actor(), d, &new).await })
        })
        .collect();
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("expected Ok or Conflict, got {e:?}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 4));
    let m = mac("001565aabbcc");
    let in_a = s.device(a, m).await.is_ok();
    let in_b = s.device(b, m).await.is_ok();
    assert!(in_a != in_b, "the device exists exactly once");
    let creates = s
        .list_audit(None, all())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.action == "device.create")
        .count();
    assert_eq!(creates, 1, "refused creates leave no audit entry");
}

// ---------------------------------------------------------------------------------------
// Phones

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{TimeDelta, Utc};
use provisor_domain::phone::{Contact, PhoneDevice, PhonePolicy, Refusal};
use provisor_domain::token::digest;

use crate::{MAX_UNASSIGNED_PER_DOMAIN, REFUSALS_KEPT, UnassignedDevice};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

/// Asserts that `t` is `minutes` after a moment from `from` to `to`, at the millisecond
/// precision times are stored with.
#[track_caller]
fn minutes_after(t: Option<Timestamp>, from: Timestamp, to: Timestamp, minutes: i64, what: &str) {
    let t = t
        .unwrap_or_else(|| panic!("{what}: expected a time, got none"))
        .timestamp_millis();
    let lo = from.timestamp_millis() + minutes * 60_000;
    let hi = to.timestamp_millis() + minutes * 60_000;
    assert!(
        (lo..=hi).contains(&t),
        "{what}: {t} is not {minutes} minutes after a moment in [{}, {}]",
        from.timestamp_millis(),
        to.timestamp_millis()
    );
}

/// Domains `a.example` and `b.example`.
async fn two_domains(s: &dyn Store) -> (DomainId, DomainId) {
    (
        new_domain(s, "a.example").await.id,
        new_domain(s, "b.example").await.id,
    )
}

async fn new_domain_with_policy(s: &dyn Store, name: &str, policy: Value) -> Domain {
    let new: NewDomain = input(json!({ "name": name, "phone_policy": policy }));
    s.create_domain(&actor(), &new.validate().unwrap())
        .await
        .unwrap()
}

/// Replaces the domain's phone policy (fields not given take their defaults).
async fn set_policy(s: &dyn Store, d: DomainId, policy: Value) -> Domain {
    let patch: DomainPatch = input(json!({ "phone_policy": policy }));
    s.update_domain(&actor(), d, &patch.validate().unwrap())
        .await
        .unwrap()
}

async fn phone(s: &dyn Store, m: Mac) -> PhoneDevice {
    s.phone_by_mac(m)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no phone with MAC {m}"))
}

/// The id of the device a token finds, by its digest.
async fn phone_id_by_token(s: &dyn Store, token: &str) -> Option<i64> {
    s.phone_by_token(&digest(token))
        .await
        .unwrap()
        .map(|p| p.id)
}

async fn token_of(s: &dyn Store, d: DomainId, m: Mac) -> String {
    s.device_credentials(d, m)
        .await
        .unwrap()
        .token
        .unwrap_or_else(|| panic!("device {m} has no token"))
        .expose()
        .to_owned()
}

/// Everything of a phone device, secrets included, to compare two lookups as a whole.
fn phone_view(p: &PhoneDevice) -> Value {
    json!({
        "id": p.id, "domain": p.domain.0, "domain_name": p.domain_name, "mac": p.mac,
        "vendor": p.vendor, "model": p.model, "firmware": p.firmware, "state": p.state,
        "policy": p.policy, "owner_display_name": p.owner_display_name,
        "lines": p.lines.iter().map(|l| json!([
            l.position, l.sip_user, l.auth_user, l.password.expose(), l.display_name,
            l.registrar, l.outbound_proxy, l.transport
        ])).collect::<Vec<_>>(),
        "layers": p.layers, "token": p.token.expose(), "admin_password": p.admin_password.expose(),
        "fetch_password": p.fetch_password.expose(), "armed_until": millis(p.armed_until),
    })
}

/// An unauthenticated contact without vendor, model or firmware.
fn contact(m: Mac, device_id: Option<i64>, from: &str, at: Timestamp) -> Contact {
    Contact {
        jobs: Vec::new(),
        mac: m,
        device_id,
        vendor: String::new(),
        model: String::new(),
        firmware: String::new(),
        ip: ip(from),
        at,
        provisioned: false,
    }
}

async fn all_unassigned(s: &dyn Store, d: DomainId) -> Vec<UnassignedDevice> {
    collect_pages(PageRequest::MAX_LIMIT, |p| s.list_unassigned(d, p))
        .await
        .0
}

pub async fn phone_lookup_by_mac_and_token(s: Arc<dyn Store>) {
    let s = &*s;
    let new: NewDomain =
        input(json!({"name": "a.example", "settings": {"lang": "de", "layer": "domain"}}));
    let domain = s
        .create_domain(&actor(), &new.validate().unwrap())
        .await
        .unwrap();
    let a = domain.id;
    assert_eq!(
        domain.phone_policy,
        PhonePolicy::default(),
        "a domain created without a policy has the default one"
    );
    let new: NewCategory = input(json!({"name": "Desk", "settings": {"layer": "category"}}));
    s.create_category(&actor(), a, &new.validate().unwrap())
        .await
        .unwrap();
    let new: NewUser = input(
        json!({"username": "alice", "display_name": "Alice A", "settings": {"layer": "user"}}),
    );
    s.create_user(&actor(), a, &new.validate().unwrap(), None)
        .await
        .unwrap();
    let new: NewSipAccount = input(json!({
        "sip_user": "100", "auth_user": "a100", "password": TRICKY_PASSWORD,
        "display_name": "Alice Desk", "registrar": "sip.example.com:5061",
        "outbound_proxy": "proxy.example.com", "transport": "tls"
    }));
    s.create_account(&actor(), a, "alice", &new.validate().unwrap())
        .await
        .unwrap();
    new_account(s, a, "alice", "101", "pw-101").await;

    let m = mac("001565aabb01");
    let before = Utc::now();
    let device = new_device(
        s,
        a,
        json!({
            "mac": m, "vendor": "Yealink", "model": "T54W", "category": "Desk", "user": "alice",
            "lines": ["101", "100"], "settings": {"layer": "device"}
        }),
    )
    .await;
    let after = Utc::now();

    let creds = s.device_credentials(a, m).await.unwrap();
    let token = creds
        .token
        .as_ref()
        .expect("a new device has a URL token")
        .expose()
        .to_owned();
    let admin_pw = creds
        .admin_password
        .as_ref()
        .expect("a new device has an admin password")
        .expose()
        .to_owned();
    let fetch_pw = creds
        .fetch_password
        .as_ref()
        .expect("a new device has a fetch password")
        .expose()
        .to_owned();
    assert!(!token.is_empty() && !admin_pw.is_empty() && !fetch_pw.is_empty());
    assert!(
        token != admin_pw && token != fetch_pw && admin_pw != fetch_pw,
        "the device's secrets are distinct"
    );
    minutes_after(
        creds.armed_until,
        before,
        after,
        60,
        "a new device is armed for the default arm_minutes",
    );
    assert_eq!(creds.previous_token_until, None, "no previous token yet");

    let p = phone(s, m).await;
    assert_eq!(p.id, device.id);
    assert_eq!(p.domain, a);
    assert_eq!(p.domain_name, "a.example");
    assert_eq!(p.mac, m);
    assert_eq!((p.vendor.as_str(), p.model.as_str()), ("yealink", "T54W"));
    assert_eq!(p.state, DeviceState::Added);
    assert_eq!(p.policy, domain.phone_policy);
    assert_eq!(p.owner_display_name, "Alice A");
    let got: Vec<_> = p
        .lines
        .iter()
        .map(|l| {
            (
                l.position,
                l.sip_user.as_str(),
                l.auth_user.as_str(),
                l.password.expose(),
                l.display_name.as_str(),
                l.registrar.as_str(),
                l.outbound_proxy.as_str(),
                l.transport,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "101", "", "pw-101", "", "", "", Transport::Udp),
            (
                2,
                "100",
                "a100",
                TRICKY_PASSWORD,
                "Alice Desk",
                "sip.example.com:5061",
                "proxy.example.com",
                Transport::Tls
            ),
        ],
        "lines in order, with their decrypted passwords"
    );
    let layers: Vec<Value> = p.layers.iter().cloned().map(Value::Object).collect();
    assert_eq!(
        layers,
        [
            json!({"lang": "de", "layer": "domain"}),
            json!({"layer": "category"}),
            json!({}),
            json!({"layer": "user"}),
            json!({"layer": "device"}),
        ],
        "settings layers lowest first: domain, category, update jobs (none), user, device"
    );
    assert_eq!(p.token.expose(), token);
    assert_eq!(p.admin_password.expose(), admin_pw);
    assert_eq!(p.fetch_password.expose(), fetch_pw);
    assert_eq!(millis(p.armed_until), millis(creds.armed_until));
    assert!(p.is_armed(Utc::now()));

    let by_token = s
        .phone_by_token(&digest(&token))
        .await
        .unwrap()
        .expect("the device is found by its token's digest");
    assert_eq!(phone_view(&by_token), phone_view(&p));
    for (wrong, what) in [
        (digest("not-the-token"), "another token's digest"),
        (token.clone(), "the token itself, not its digest"),
        (digest(&admin_pw), "the admin password's digest"),
        (digest(&fetch_pw), "the fetch password's digest"),
        (String::new(), "an empty digest"),
    ] {
        assert!(
            s.phone_by_token(&wrong).await.unwrap().is_none(),
            "{what} finds no device"
        );
    }
    assert!(
        s.phone_by_mac(mac("001565ffffff")).await.unwrap().is_none(),
        "an unknown MAC finds no device"
    );

    // A device without category or owner has empty middle layers.
    let m2 = mac("001565aabb02");
    new_device(s, a, json!({"mac": m2})).await;
    let p2 = phone(s, m2).await;
    assert_ne!(p2.id, p.id);
    let layers: Vec<Value> = p2.layers.iter().cloned().map(Value::Object).collect();
    assert_eq!(
        layers,
        [
            json!({"lang": "de", "layer": "domain"}),
            json!({}),
            json!({}),
            json!({}),
            json!({}),
        ]
    );
    assert_eq!(p2.owner_display_name, "");
    assert!(p2.lines.is_empty());
    let token2 = token_of(s, a, m2).await;
    assert_ne!(token2, token, "every device has its own token");
    assert_eq!(phone_id_by_token(s, &token2).await, Some(p2.id));
    assert_eq!(phone_id_by_token(s, &token).await, Some(p.id));

    // A domain's own policy comes with its devices; arm_minutes 0 adds them unarmed.
    let policy = json!({"digest": true, "arm_minutes": 0});
    let db = new_domain_with_policy(s, "b.example", policy).await;
    let expected = PhonePolicy {
        digest: true,
        arm_minutes: 0,
        ..PhonePolicy::default()
    };
    assert_eq!(db.phone_policy, expected);
    assert_eq!(s.domain_by_id(db.id).await.unwrap().phone_policy, expected);
    let mb = mac("001565bb0001");
    new_device(s, db.id, json!({"mac": mb})).await;
    let cb = s.device_credentials(db.id, mb).await.unwrap();
    assert_eq!(
        cb.armed_until, None,
        "a device added with arm_minutes 0 is not armed"
    );
    assert!(cb.token.is_some() && cb.admin_password.is_some() && cb.fetch_password.is_some());
    let pb = phone(s, mb).await;
    assert_eq!((pb.domain, pb.domain_name.as_str()), (db.id, "b.example"));
    assert_eq!(pb.policy, expected);
    assert_eq!(pb.armed_until, None);
    assert!(!pb.is_armed(Utc::now()));
    let tb = cb.token.unwrap();
    let by_token = s
        .phone_by_token(&digest(tb.expose()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(phone_view(&by_token), phone_view(&pb));

    // A changed policy shows at once; credentials are scoped by domain.
    let changed = set_policy(s, a, json!({"networks": ["10.0.0.0/8"], "digest": true})).await;
    assert_eq!(phone(s, m).await.policy, changed.phone_policy);
    assert!(changed.phone_policy.digest);
    expect_not_found(
        s.device_credentials(db.id, m).await,
        "credentials of A's device from B",
    );
    expect_not_found(
        s.device_credentials(a, mac("001565ffffff")).await,
        "credentials of an unknown MAC",
    );
}

pub async fn token_rotation_grace(s: Arc<dyn Store>) {
    let s = &*s;
    let (a, b) = two_domains(s).await;
    let m = mac("001565aabb01");
    let device = new_device(s, a, json!({"mac": m})).await;
    let first = s.device_credentials(a, m).await.unwrap();
    let t0 = token_of(s, a, m).await;
    let admin_pw = first.admin_password.unwrap().expose().to_owned();
    let fetch_pw = first.fetch_password.unwrap().expose().to_owned();

    expect_not_found(
        s.rotate_device_token(&actor(), b, m).await,
        "rotation of A's device from B",
    );
    expect_not_found(
        s.rotate_device_token(&actor(), a, mac("001565ffffff"))
            .await,
        "rotation of an unknown MAC",
    );
    assert_eq!(
        token_of(s, a, m).await,
        t0,
        "a refused rotation keeps the token"
    );

    let before = Utc::now();
    s.rotate_device_token(&actor(), a, m).await.unwrap();
    let after = Utc::now();
    let c1 = s.device_credentials(a, m).await.unwrap();
    let t1 = token_of(s, a, m).await;
    assert_ne!(t1, t0, "rotation makes a new token");
    minutes_after(
        c1.previous_token_until,
        before,
        after,
        24 * 60,
        "the previous token works for the default grace",
    );
    assert_eq!(
        (
            c1.admin_password.unwrap().expose(),
            c1.fetch_password.unwrap().expose()
        ),
        (admin_pw.as_str(), fetch_pw.as_str()),
        "rotating the token keeps the passwords"
    );
    assert_eq!(phone_id_by_token(s, &t1).await, Some(device.id));
    assert_eq!(
        phone_id_by_token(s, &t0).await,
        Some(device.id),
        "the old token still works in its grace period"
    );
    let via_old = s.phone_by_token(&digest(&t0)).await.unwrap().unwrap();
    assert_eq!(
        via_old.token.expose(),
        t1,
        "found by its old token, the device is handed the new one"
    );
    assert_eq!(phone(s, m).await.token.expose(), t1);

    set_policy(s, a, json!({"token_grace_minutes": 0})).await;
    s.rotate_device_token(&actor(), a, m).await.unwrap();
    let c2 = s.device_credentials(a, m).await.unwrap();
    let t2 = token_of(s, a, m).await;
    assert!(t2 != t1 && t2 != t0);
    assert_eq!(c2.previous_token_until, None, "no grace, no previous token");
    assert_eq!(phone_id_by_token(s, &t2).await, Some(device.id));
    assert_eq!(
        phone_id_by_token(s, &t1).await,
        None,
        "the token just replaced, without grace"
    );
    assert_eq!(
        phone_id_by_token(s, &t0).await,
        None,
        "the token before it is gone for good"
    );

    let entries = s.list_audit(Some(a), all()).await.unwrap().items;
    let rotations: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.action == "device.rotate-token")
        .collect();
    assert_eq!(rotations.len(), 2, "one entry per rotation: {entries:#?}");
    for e in &rotations {
        assert_eq!(e.target, m.to_string());
        assert_eq!(e.domain.as_deref(), Some("a.example"));
        assert_eq!(e.actor, "test");
    }
    let text = serde_json::to_string(&s.list_audit(None, all()).await.unwrap().items).unwrap();
    for secret in [&t0, &t1, &t2, &admin_pw, &fetch_pw] {
        assert!(
            !text.contains(secret.as_str()),
            "the audit log holds a device secret: {text}"
        );
        assert!(
            !text.contains(&digest(secret)),
            "the audit log holds a secret's digest: {text}"
        );
    }
}

pub async fn disarm_once(store: Arc<dyn Store>) {
    let s = &*store;
    let (a, b) = two_domains(s).await;
    let m = mac("001565aabb01");
    let m2 = mac("001565aabb02");
    let id = new_device(s, a, json!({"mac": m})).await.id;
    let id2 = new_device(s, a, json!({"mac": m2})).await.id;
    assert!(phone(s, m).await.is_armed(Utc::now()));

    assert!(
        s.disarm(id).await.unwrap(),
        "the first disarm ends the window"
    );
    assert!(
        !s.disarm(id).await.unwrap(),
        "a second disarm finds it ended"
    );
    assert_eq!(s.device_credentials(a, m).await.unwrap().armed_until, None);
    assert!(!phone(s, m).await.is_armed(Utc::now()));
    assert!(
        phone(s, m2).await.is_armed(Utc::now()),
        "disarming one device leaves the others armed"
    );
    assert!(
        !s.disarm(id.max(id2) + 1000).await.unwrap(),
        "an unknown device"
    );

    let before = Utc::now();
    let until = s.arm_device(&actor(), a, m, None).await.unwrap();
    let after = Utc::now();
    minutes_after(
        until,
        before,
        after,
        60,
        "arming for the domain's arm_minutes",
    );
    assert_eq!(
        millis(s.device_credentials(a, m).await.unwrap().armed_until),
        millis(until)
    );
    assert_eq!(millis(phone(s, m).await.armed_until), millis(until));

    // Of many fetches racing to use the window, exactly one gets it.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.disarm(id).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await.expect("task").expect("disarm") {
            winners += 1;
        }
    }
    assert_eq!(
        winners, 1,
        "concurrent disarms: exactly one ends the window"
    );
    assert_eq!(s.device_credentials(a, m).await.unwrap().armed_until, None);

    let before = Utc::now();
    let until = s.arm_device(&actor(), a, m, Some(5)).await.unwrap();
    let after = Utc::now();
    minutes_after(until, before, after, 5, "arming for 5 minutes");
    assert!(phone(s, m).await.is_armed(Utc::now()));

    assert_eq!(
        s.arm_device(&actor(), a, m, Some(0)).await.unwrap(),
        None,
        "0 minutes disarms"
    );
    assert_eq!(s.device_credentials(a, m).await.unwrap().armed_until, None);
    assert!(!s.disarm(id).await.unwrap(), "nothing left to disarm");

    let max = PhonePolicy::MAX_MINUTES;
    let before = Utc::now();
    let until = s.arm_device(&actor(), a, m, Some(max)).await.unwrap();
    let after = Utc::now();
    minutes_after(
        until,
        before,
        after,
        i64::from(max),
        "arming for the longest window",
    );
    match s.arm_device(&actor(), a, m, Some(max + 1)).await {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("arming beyond MAX_MINUTES: expected Invalid, got {other:?}"),
    }
    assert_eq!(
        millis(s.device_credentials(a, m).await.unwrap().armed_until),
        millis(until),
        "a refused arming changes nothing"
    );

    // Without minutes, the domain's current arm_minutes; 0 there disarms too.
    set_policy(s, a, json!({"arm_minutes": 15})).await;
    let before = Utc::now();
    let until = s.arm_device(&actor(), a, m, None).await.unwrap();
    let after = Utc::now();
    minutes_after(
        until,
        before,
        after,
        15,
        "arming for the changed arm_minutes",
    );
    set_policy(s, a, json!({"arm_minutes": 0})).await;
    assert_eq!(s.arm_device(&actor(), a, m, None).await.unwrap(), None);
    assert_eq!(s.device_credentials(a, m).await.unwrap().armed_until, None);

    expect_not_found(
        s.arm_device(&actor(), b, m2, Some(5)).await,
        "arming A's device from B",
    );
    expect_not_found(
        s.arm_device(&actor(), a, mac("001565ffffff"), Some(5))
            .await,
        "arming an unknown MAC",
    );
}

pub async fn contacts_recorded(s: Arc<dyn Store>) {
    let s = &*s;
    let a = new_domain(s, "a.example").await.id;
    let m1 = mac("001565aabb01");
    let m2 = mac("001565aabb02");
    let m3 = mac("001565aabb03");
    let d1 = new_device(
        s,
        a,
        json!({"mac": m1, "vendor": "yealink", "model": "T54W"}),
    )
    .await;
    let d2 = new_device(s, a, json!({"mac": m2})).await;
    let d3 = new_device(s, a, json!({"mac": m3})).await;
    s.update_device(&actor(), a, m3, &device_patch(json!({"state": "disabled"})))
        .await
        .unwrap();
    assert_eq!((d1.first_contact, d1.last_contact), (None, None));
    assert_eq!(d1.last_ip, None);

    s.record_contacts(&[]).await.unwrap();
    let t1 = Utc::now() - TimeDelta::minutes(10);
    let t2 = t1 + TimeDelta::minutes(5);
    let t3 = t2 + TimeDelta::minutes(1);
    let known =
        |m: Mac, id: i64, from: &str, at: Timestamp, firmware: &str, provisioned: bool| Contact {
            jobs: Vec::new(),
            vendor: "yealink".into(),
            model: "T54W".into(),
            firmware: firmware.into(),
            provisioned,
            ..contact(m, Some(id), from, at)
        };
    s.record_contacts(&[known(m1, d1.id, "10.1.2.3", t1, "1.2.3", true)])
        .await
        .unwrap();
    let got = s.device(a, m1).await.unwrap();
    assert_eq!(millis(got.first_contact), Some(t1.timestamp_millis()));
    assert_eq!(millis(got.last_contact), Some(t1.timestamp_millis()));
    assert_eq!(got.last_ip.as_deref(), Some("10.1.2.3"));
    assert_eq!(got.firmware, "1.2.3");
    assert_eq!(got.state, DeviceState::Provisioned);

    s.record_contacts(&[
        known(m1, d1.id, "10.1.2.4", t2, "1.2.4", true),
        known(m2, d2.id, "10.1.2.5", t2, "9.9", false),
        known(m3, d3.id, "10.1.2.6", t2, "", true),
    ])
    .await
    .unwrap();
    let got = s.device(a, m1).await.unwrap();
    assert_eq!(
        millis(got.first_contact),
        Some(t1.timestamp_millis()),
        "a later contact keeps the first"
    );
    assert_eq!(millis(got.last_contact), Some(t2.timestamp_millis()));
    assert_eq!(got.last_ip.as_deref(), Some("10.1.2.4"));
    assert_eq!(got.firmware, "1.2.4");
    let got2 = s.device(a, m2).await.unwrap();
    assert_eq!(
        got2.state,
        DeviceState::Added,
        "a contact that fetched no device file does not make it provisioned"
    );
    assert_eq!(millis(got2.first_contact), Some(t2.timestamp_millis()));
    assert_eq!(millis(got2.last_contact), Some(t2.timestamp_millis()));
    assert_eq!(
        (got2.last_ip.as_deref(), got2.firmware.as_str()),
        (Some("10.1.2.5"), "9.9")
    );
    let got3 = s.device(a, m3).await.unwrap();
    assert_eq!(
        got3.state,
        DeviceState::Disabled,
        "a contact does not re-enable a disabled device"
    );
    assert_eq!(millis(got3.last_contact), Some(t2.timestamp_millis()));

    s.record_contacts(&[known(m1, d1.id, "10.1.2.4", t3, "", false)])
        .await
        .unwrap();
    let got = s.device(a, m1).await.unwrap();
    assert_eq!(
        got.state,
        DeviceState::Provisioned,
        "a provisioned device stays so"
    );
    assert_eq!(
        got.firmware, "1.2.4",
        "a contact without firmware keeps the known one"
    );
    assert_eq!(millis(got.last_contact), Some(t3.timestamp_millis()));

    // Unknown MACs: not recorded by domains that do not ask for it.
    let c = new_domain_with_policy(s, "c.example", json!({"networks": ["10.0.0.0/8"]}))
        .await
        .id;
    let u1 = mac("001565cc0001");
    let u2 = mac("001565cc0002");
    let u3 = mac("001565cc0003");
    let u4 = mac("001565cc0004");
    s.record_contacts(&[contact(u1, None, "10.9.8.7", t1)])
        .await
        .unwrap();
    assert!(all_unassigned(s, a).await.is_empty());
    assert!(all_unassigned(s, c).await.is_empty());

    let policy = json!({"networks": ["10.0.0.0/8"], "record_unassigned": true});
    let b = new_domain_with_policy(s, "b.example", policy).await.id;
    assert!(
        all_unassigned(s, b).await.is_empty(),
        "contacts from before the domain asked are not listed"
    );
    let mb = mac("001565bb0001");
    new_device(s, b, json!({"mac": mb})).await;
    let described = |m: Mac, from: &str, at: Timestamp, firmware: &str| Contact {
        jobs: Vec::new(),
        vendor: "yealink".into(),
        model: "T46U".into(),
        firmware: firmware.into(),
        ..contact(m, None, from, at)
    };
    s.record_contacts(&[
        described(u1, "10.9.8.7", t1, "66.86.0.15"),
        contact(u2, None, "192.168.1.5", t1),
        contact(m1, None, "10.1.2.3", t1),
        contact(mb, None, "10.1.2.3", t1),
        contact(u3, None, "10.9.8.9", t1),
        contact(u3, None, "10.9.8.10", t2),
    ])
    .await
    .unwrap();
    let listed = all_unassigned(s, b).await;
    let seen: Vec<Mac> = listed.iter().map(|u| u.mac).collect();
    assert_eq!(
        seen,
        [u1, u3],
        "only unknown MACs from the domain's networks, each once: {listed:#?}"
    );
    let u = &listed[0];
    assert_eq!(
        (
            u.vendor.as_str(),
            u.model.as_str(),
            u.firmware.as_str(),
            u.last_ip.as_str()
        ),
        ("yealink", "T46U", "66.86.0.15", "10.9.8.7")
    );
    assert_eq!(u.first_contact.timestamp_millis(), t1.timestamp_millis());
    assert_eq!(u.last_contact.timestamp_millis(), t1.timestamp_millis());
    let v = &listed[1];
    assert_eq!(
        (
            v.first_contact.timestamp_millis(),
            v.last_contact.timestamp_millis(),
            v.last_ip.as_str()
        ),
        (t1.timestamp_millis(), t2.timestamp_millis(), "10.9.8.10"),
        "two contacts in one batch make one entry"
    );
    assert!(all_unassigned(s, a).await.is_empty());
    assert!(all_unassigned(s, c).await.is_empty());

    s.record_contacts(&[described(u1, "10.9.8.8", t2, "66.86.0.20")])
        .await
        .unwrap();
    let again = all_unassigned(s, b).await;
    assert_eq!(again.len(), 2, "a repeated contact updates: {again:#?}");
    let u = &again[0];
    assert_eq!(u.id, listed[0].id);
    assert_eq!(u.mac, u1);
    assert_eq!(u.first_contact.timestamp_millis(), t1.timestamp_millis());
    assert_eq!(u.last_contact.timestamp_millis(), t2.timestamp_millis());
    assert_eq!(
        (u.firmware.as_str(), u.last_ip.as_str()),
        ("66.86.0.20", "10.9.8.8")
    );

    // A MAC claimed as a device is no longer unassigned.
    new_device(s, b, json!({"mac": u3})).await;
    let seen: Vec<Mac> = all_unassigned(s, b).await.iter().map(|u| u.mac).collect();
    assert_eq!(seen, [u1]);
    s.record_contacts(&[contact(u4, None, "10.0.0.1", t2)])
        .await
        .unwrap();
    let seen: Vec<Mac> = all_unassigned(s, b).await.iter().map(|u| u.mac).collect();
    assert_eq!(seen, [u1, u4]);

    // The bound, in a domain of its own network.
    let policy = json!({"networks": ["172.16.0.0/12"], "record_unassigned": true});
    let e = new_domain_with_policy(s, "e.example", policy).await.id;
    let max = MAX_UNASSIGNED_PER_DOMAIN as usize;
    let bulk: Vec<Contact> = (0..max + 5)
        .map(|i| contact(mac(&format!("0200{i:08x}")), None, "172.16.0.9", t1))
        .collect();
    for batch in bulk.chunks(200) {
        s.record_contacts(batch).await.unwrap();
    }
    let kept = all_unassigned(s, e).await;
    assert_eq!(
        kept.len(),
        max,
        "at most MAX_UNASSIGNED_PER_DOMAIN are kept"
    );
    let kept_macs: BTreeSet<Mac> = kept.iter().map(|u| u.mac).collect();
    let first_macs: BTreeSet<Mac> = bulk[..max].iter().map(|c| c.mac).collect();
    assert_eq!(
        kept_macs, first_macs,
        "the first MACs are kept, further ones not recorded"
    );
    // A full list still follows the MACs it holds.
    s.record_contacts(&[contact(bulk[0].mac, None, "172.16.0.10", t3)])
        .await
        .unwrap();
    let kept = all_unassigned(s, e).await;
    assert_eq!(kept.len(), max);
    let u = kept.iter().find(|u| u.mac == bulk[0].mac).unwrap();
    assert_eq!(
        (u.last_ip.as_str(), u.last_contact.timestamp_millis()),
        ("172.16.0.10", t3.timestamp_millis())
    );
    assert_eq!(
        all_unassigned(s, b).await.len(),
        2,
        "another domain's list is its own"
    );
}

pub async fn refusals_kept_per_device(s: Arc<dyn Store>) {
    let s = &*s;
    let (a, b) = two_domains(s).await;
    let m = mac("001565aabb01");
    let quiet = mac("001565aabb02");
    let mb = mac("001565bb0001");
    let unknown = mac("001565ee0001");
    new_device(s, a, json!({"mac": m})).await;
    new_device(s, a, json!({"mac": quiet})).await;
    new_device(s, b, json!({"mac": mb})).await;

    s.record_refusals(&[]).await.unwrap();
    let t0 = Utc::now() - TimeDelta::hours(1);
    let refusal = |m: Mac, i: i64| Refusal {
        mac: m,
        at: t0 + TimeDelta::seconds(i),
        ip: ip("10.1.2.3"),
        file: format!("{m}.cfg"),
        reason: format!("reason {i}"),
    };
    let n = REFUSALS_KEPT + 10;
    let mine: Vec<Refusal> = (0..n).map(|i| refusal(m, i)).collect();
    // A batch that fits, with B's device and an unknown MAC in it; then the rest.
    let (early, late) = mine.split_at(25);
    let mut batch = early.to_vec();
    batch.insert(
        3,
        Refusal {
            reason: "B's own".into(),
            ..refusal(mb, 0)
        },
    );
    batch.insert(7, refusal(unknown, 0));
    s.record_refusals(&batch).await.unwrap();
    assert_eq!(s.list_refusals(a, m, all()).await.unwrap().items.len(), 25);
    s.record_refusals(late).await.unwrap();

    let (items, sizes) = collect_pages(7, |p| s.list_refusals(a, m, p)).await;
    let reasons: Vec<&str> = items.iter().map(|r| r.reason.as_str()).collect();
    let expected: Vec<String> = (10..n).rev().map(|i| format!("reason {i}")).collect();
    assert_eq!(reasons, expected, "the newest REFUSALS_KEPT, newest first");
    assert_eq!(sizes.len(), (REFUSALS_KEPT as usize).div_ceil(7));
    assert!(items.windows(2).all(|w| w[0].id > w[1].id));
    let newest = &items[0];
    assert_eq!(
        newest.at.timestamp_millis(),
        (t0 + TimeDelta::seconds(n - 1)).timestamp_millis()
    );
    assert_eq!(
        (newest.ip.as_str(), newest.file.as_str()),
        ("10.1.2.3", "001565aabb01.cfg")
    );
    assert_eq!(s.list_refusals(a, m, all()).await.unwrap().items, items);

    let theirs = s.list_refusals(b, mb, all()).await.unwrap().items;
    let reasons: Vec<&str> = theirs.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["B's own"],
        "other devices keep their own refusals"
    );
    assert!(
        s.list_refusals(a, quiet, all())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // One batch beyond the limit for one device.
    let many: Vec<Refusal> = (0..REFUSALS_KEPT + 5).map(|i| refusal(quiet, i)).collect();
    s.record_refusals(&many).await.unwrap();
    let kept = s.list_refusals(a, quiet, all()).await.unwrap().items;
    let reasons: Vec<&str> = kept.iter().map(|r| r.reason.as_str()).collect();
    let expected: Vec<String> = (5..REFUSALS_KEPT + 5)
        .rev()
        .map(|i| format!("reason {i}"))
        .collect();
    assert_eq!(reasons, expected);
    assert_eq!(
        s.list_refusals(a, m, all()).await.unwrap().items,
        items,
        "trimming one device leaves the others"
    );

    // Refusals of an unknown MAC are not kept for a device added later.
    new_device(s, a, json!({"mac": unknown})).await;
    assert!(
        s.list_refusals(a, unknown, all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Nor do a deleted device's refusals reach a new device of the same MAC.
    s.delete_device(&actor(), a, m).await.unwrap();
    new_device(s, a, json!({"mac": m})).await;
    assert!(s.list_refusals(a, m, all()).await.unwrap().items.is_empty());

    expect_not_found(s.list_refusals(b, m, all()).await, "A's device from B");
    expect_not_found(s.list_refusals(a, mb, all()).await, "B's device from A");
    expect_not_found(
        s.list_refusals(a, mac("001565ffffff"), all()).await,
        "an unknown MAC",
    );
}

pub async fn uploads_kept_latest(s: Arc<dyn Store>) {
    let s = &*s;
    let (a, b) = two_domains(s).await;
    let m = mac("001565aabb01");
    let m2 = mac("001565aabb02");
    let id = new_device(s, a, json!({"mac": m})).await.id;
    let id2 = new_device(s, a, json!({"mac": m2})).await.id;
    new_device(s, b, json!({"mac": "001565bb0001"})).await;
    assert!(s.list_uploads(a, m).await.unwrap().is_empty());
    expect_not_found(s.upload(a, m, "boot.log").await, "an upload never made");

    let before = Utc::now();
    s.store_upload(id, "boot.log", b"first boot").await.unwrap();
    let latest = b"second boot, longer than the first".to_vec();
    s.store_upload(id, "boot.log", &latest).await.unwrap();
    // Every byte value, more than fits a small row.
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s.store_upload(id, "app.log", &binary).await.unwrap();
    s.store_upload(id, "empty.log", b"").await.unwrap();
    s.store_upload(id2, "boot.log", b"the other device")
        .await
        .unwrap();
    let after = Utc::now();

    assert_eq!(
        s.upload(a, m, "boot.log").await.unwrap(),
        latest,
        "the latest upload of a name is kept"
    );
    assert_eq!(s.upload(a, m, "app.log").await.unwrap(), binary);
    assert!(s.upload(a, m, "empty.log").await.unwrap().is_empty());
    assert_eq!(
        s.upload(a, m2, "boot.log").await.unwrap(),
        b"the other device"
    );

    let mut listed = s.list_uploads(a, m).await.unwrap();
    listed.sort_by(|x, y| x.name.cmp(&y.name));
    let summary: Vec<(&str, u64)> = listed.iter().map(|u| (u.name.as_str(), u.size)).collect();
    assert_eq!(
        summary,
        [
            ("app.log", binary.len() as u64),
            ("boot.log", latest.len() as u64),
            ("empty.log", 0)
        ]
    );
    for u in &listed {
        let at = u.at.timestamp_millis();
        assert!(
            (before.timestamp_millis()..=after.timestamp_millis()).contains(&at),
            "{u:?} is not from [{before}, {after}]"
        );
    }
    let other: Vec<(String, u64)> = s
        .list_uploads(a, m2)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.size))
        .collect();
    assert_eq!(other, [("boot.log".to_owned(), 16)]);

    expect_not_found(s.upload(a, m, "missing.log").await, "an unknown name");
    expect_not_found(s.upload(b, m, "boot.log").await, "A's upload from B");
    expect_not_found(s.list_uploads(b, m).await, "A's uploads from B");
    expect_not_found(
        s.list_uploads(a, mac("001565ffffff")).await,
        "uploads of an unknown MAC",
    );
    expect_not_found(
        s.upload(a, mac("001565ffffff"), "boot.log").await,
        "an upload of an unknown MAC",
    );
}

/// MACs claimed as devices leave the unassigned list, and so must not hold places under
/// its bound: a domain that has claimed its phones goes on recording new unknown MACs.
pub async fn unassigned_bound_counts_only_unclaimed(s: Arc<dyn Store>) {
    let s = &*s;
    let policy = json!({"networks": ["10.0.0.0/8"], "record_unassigned": true});
    let d = new_domain_with_policy(s, "a.example", policy).await.id;
    let max = MAX_UNASSIGNED_PER_DOMAIN as usize;
    let at = Utc::now();
    let bulk: Vec<Contact> = (0..max)
        .map(|i| contact(mac(&format!("0200{i:08x}")), None, "10.0.0.9", at))
        .collect();
    for batch in bulk.chunks(200) {
        s.record_contacts(batch).await.unwrap();
    }
    assert_eq!(all_unassigned(s, d).await.len(), max);

    for c in &bulk[..3] {
        new_device(s, d, json!({"mac": c.mac})).await;
    }
    assert_eq!(all_unassigned(s, d).await.len(), max - 3);

    let fresh: Vec<Contact> = (0..3)
        .map(|i| contact(mac(&format!("0300{i:08x}")), None, "10.0.0.9", at))
        .collect();
    s.record_contacts(&fresh).await.unwrap();
    let listed: BTreeSet<Mac> = all_unassigned(s, d).await.iter().map(|u| u.mac).collect();
    assert_eq!(
        listed.len(),
        max,
        "claimed MACs still hold places under the bound"
    );
    for c in &fresh {
        assert!(listed.contains(&c.mac), "{} is not recorded", c.mac);
    }
}

// ---------------------------------------------------------------------------------------
// Stored templates

use crate::TemplateKey;
use provisor_domain::template::TemplateOrigin;

fn key<'a>(category: Option<&'a str>, vendor: &'a str, name: &'a str) -> TemplateKey<'a> {
    TemplateKey {
        category,
        vendor,
        name,
    }
}

async fn put(s: &dyn Store, d: DomainId, k: TemplateKey<'_>, source: &str) {
    s.put_template(&actor(), d, k, TemplateOrigin::Template, source)
        .await
        .unwrap();
}

/// (vendor, name, source, from_category) of a phone's templates, in the order it gets them.
async fn phone_templates(s: &dyn Store, m: Mac) -> Vec<(String, String, String, bool)> {
    phone(s, m)
        .await
        .templates
        .into_iter()
        .map(|t| (t.vendor, t.name, t.source, t.from_category))
        .collect()
}

pub async fn templates_per_domain_and_category(s: Arc<dyn Store>) {
    let s = &*s;
    let (a, b) = two_domains(s).await;
    new_category(s, a, "Desk").await;
    new_category(s, a, "Lobby").await;
    new_category(s, b, "Desk").await;

    let domain_cfg = key(None, "yealink", "mac.cfg");
    let desk_cfg = key(Some("Desk"), "yealink", "mac.cfg");
    put(s, a, domain_cfg, "domain v1").await;
    put(s, a, desk_cfg, "desk v1").await;
    let imported = s
        .put_template(
            &actor(),
            a,
            key(None, "snom", "cfg{mac}"),
            TemplateOrigin::ThreeCx,
            "snom 3cx",
        )
        .await
        .unwrap();
    assert_eq!(imported.origin, TemplateOrigin::ThreeCx);
    assert_eq!(imported.category, None);
    assert_eq!(imported.updated_by, actor().0);

    // Replacing keeps one template under the key.
    let replaced = s
        .put_template(
            &actor(),
            a,
            domain_cfg,
            TemplateOrigin::Template,
            "domain v2",
        )
        .await
        .unwrap();
    assert_eq!(replaced.source, "domain v2");
    assert_eq!(s.template(a, domain_cfg).await.unwrap(), replaced);
    assert_eq!(s.template(a, desk_cfg).await.unwrap().source, "desk v1");
    let listed: Vec<(Option<String>, String, String)> = s
        .list_templates(a)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.category, t.vendor, t.name))
        .collect();
    assert_eq!(
        listed,
        [
            (None, "snom".into(), "cfg{mac}".into()),
            (None, "yealink".into(), "mac.cfg".into()),
            (Some("Desk".into()), "yealink".into(), "mac.cfg".into()),
        ],
        "the domain's first, then by category, vendor, name"
    );

    // A device gets its category's templates before its domain's.
    let desk = mac("001565aabb01");
    let lobby = mac("001565aabb02");
    let plain = mac("001565aabb03");
    new_device(s, a, json!({"mac": desk, "category": "Desk"})).await;
    new_device(s, a, json!({"mac": lobby, "category": "Lobby"})).await;
    new_device(s, a, json!({"mac": plain})).await;
    let t =
        |v: &str, n: &str, src: &str, cat: bool| (v.to_owned(), n.to_owned(), src.to_owned(), cat);
    assert_eq!(
        phone_templates(s, desk).await,
        [
            t("yealink", "mac.cfg", "desk v1", true),
            t("snom", "cfg{mac}", "snom 3cx", false),
            t("yealink", "mac.cfg", "domain v2", false),
        ]
    );
    assert_eq!(
        phone(s, desk)
            .await
            .template("yealink", "mac.cfg")
            .unwrap()
            .source,
        "desk v1"
    );
    let domain_only = [
        t("snom", "cfg{mac}", "snom 3cx", false),
        t("yealink", "mac.cfg", "domain v2", false),
    ];
    assert_eq!(phone_templates(s, lobby).await, domain_only);
    assert_eq!(phone_templates(s, plain).await, domain_only);

    // Another domain sees none of it, and has its own.
    expect_not_found(s.template(b, domain_cfg).await, "A's template from B");
    expect_not_found(
        s.template(b, desk_cfg).await,
        "A's category template from B",
    );
    assert!(s.list_templates(b).await.unwrap().is_empty());
    let mb = mac("001565bb0001");
    new_device(s, b, json!({"mac": mb, "category": "Desk"})).await;
    assert!(phone_templates(s, mb).await.is_empty());
    expect_not_found(
        s.delete_template(&actor(), b, domain_cfg).await,
        "deleting A's template from B",
    );
    expect_invalid(
        s.put_template(
            &actor(),
            a,
            key(Some("Nope"), "yealink", "mac.cfg"),
            TemplateOrigin::Template,
            "x",
        )
        .await,
        "category",
        "a template for an unknown category",
    );

    // Deleting: the template, and with a category its templates.
    s.delete_template(&actor(), a, domain_cfg).await.unwrap();
    expect_not_found(s.template(a, domain_cfg).await, "a deleted template");
    expect_not_found(
        s.delete_template(&actor(), a, domain_cfg).await,
        "deleting it again",
    );
    assert_eq!(
        phone_templates(s, plain).await,
        [t("snom", "cfg{mac}", "snom 3cx", false)]
    );
    s.update_device(&actor(), a, desk, &device_patch(json!({"category": null})))
        .await
        .unwrap();
    s.delete_category(&actor(), a, "Desk").await.unwrap();
    expect_invalid(
        s.template(a, key(Some("Desk"), "yealink", "mac.cfg")).await,
        "category",
        "a deleted category's template",
    );
    assert_eq!(s.list_templates(a).await.unwrap().len(), 1);

    // The audit log names the template and holds its digest, not its source.
    let entries = s.list_audit(Some(a), all()).await.unwrap().items;
    let puts: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.action == "template.put")
        .collect();
    assert_eq!(puts.len(), 4);
    assert!(puts.iter().any(|e| e.target == "Desk:yealink/mac.cfg"));
    let text = serde_json::to_string(&entries).unwrap();
    assert!(
        !text.contains("domain v2") && !text.contains("desk v1"),
        "{text}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.action == "template.delete" && e.target == "yealink/mac.cfg")
    );
}

// ---------------------------------------------------------------------------------------
// Provisioning codes and events

use provisor_domain::code::Redemption;

fn redemption(m: Mac) -> Redemption {
    Redemption {
        mac: m,
        model: "T54W".into(),
        firmware: "96.86.0.100".into(),
        bootcode: "boot-1".into(),
        reported_ip: "10.1.2.3".into(),
        ip: Some(ip("192.0.2.7")),
        vendor: "yealink".into(),
        ..Redemption::new(m)
    }
}

/// A domain with category `Desk` and user `alice` holding SIP accounts 100 and 101.
async fn code_domain(s: &dyn Store, name: &str, policy: Value) -> DomainId {
    let d = new_domain_with_policy(s, name, policy).await.id;
    new_category(s, d, "Desk").await;
    new_user(s, d, "alice").await;
    new_account(s, d, "alice", "100", "pw-100").await;
    new_account(s, d, "alice", "101", "pw-101").await;
    d
}

async fn events(s: &dyn Store, d: DomainId) -> Vec<Event> {
    s.list_events(d, 0, 1000).await.unwrap()
}

pub async fn codes_redeem_once(s: Arc<dyn Store>) {
    let s = &*s;
    let a = code_domain(s, "a.example", json!({})).await;
    let b = code_domain(s, "b.example", json!({})).await;
    let before = Utc::now();
    let issued = s
        .create_code(&actor(), a, Some("Desk"), "alice")
        .await
        .unwrap();
    let after = Utc::now();
    let code = issued.code.expose().to_owned();
    assert_eq!(code.len(), 12);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    minutes_after(
        Some(issued.valid_until),
        before,
        after,
        10,
        "valid for 10 minutes by default",
    );
    expect_invalid(
        s.create_code(&actor(), a, Some("Nope"), "alice").await,
        "category",
        "a code for an unknown category",
    );
    expect_invalid(
        s.create_code(&actor(), a, None, "nobody").await,
        "user",
        "a code for an unknown user",
    );

    // Not live: unknown, malformed; a MAC that has a device is never re-bound.
    let m = mac("001565aabb01");
    let taken = mac("001565aabb02");
    new_device(s, b, json!({"mac": taken})).await;
    assert!(
        s.redeem_code("000000000000", &redemption(m))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.redeem_code("12345", &redemption(m))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.redeem_code(&code, &redemption(taken))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.device_domain(taken).await.unwrap(),
        b,
        "the taken MAC stays where it is"
    );

    // Redeemed: the device is alice's, in Desk, with her accounts as lines.
    let typed = format!("{} {} {}", &code[..4], &code[4..8], &code[8..]);
    let redeemed = s
        .redeem_code(&typed, &redemption(m))
        .await
        .unwrap()
        .expect("a live code is redeemed (the MAC was free)");
    assert_eq!(
        (redeemed.domain, redeemed.domain_name.as_str()),
        (a, "a.example")
    );
    let d = &redeemed.device;
    assert_eq!(d.mac, m);
    assert_eq!(d.category.as_deref(), Some("Desk"));
    assert_eq!(d.user.as_deref(), Some("alice"));
    assert_eq!((d.vendor.as_str(), d.model.as_str()), ("yealink", "T54W"));
    assert_eq!(lines(d), [(1, "100".to_owned()), (2, "101".to_owned())]);
    assert_eq!(phone(s, m).await.firmware, "96.86.0.100");
    assert!(
        s.device_credentials(a, m).await.unwrap().token.is_some(),
        "the device has its URL token"
    );

    // Single use.
    assert!(
        s.redeem_code(&code, &redemption(mac("001565aabb03")))
            .await
            .unwrap()
            .is_none()
    );

    // The event, in A's log only.
    let log = events(s, a).await;
    assert_eq!(log.len(), 1);
    let e = &log[0];
    assert_eq!(
        (e.kind.as_str(), e.domain.as_str()),
        ("device.provisioned", "a.example")
    );
    assert_eq!(e.payload["mac"], "001565aabb01");
    assert_eq!(e.payload["bootcode"], "boot-1");
    assert_eq!(e.payload["ip"], "192.0.2.7");
    assert_eq!(e.payload["reported_ip"], "10.1.2.3");
    assert_eq!(e.payload["user"], "alice");
    assert_eq!(e.payload["category"], "Desk");
    assert!(events(s, b).await.is_empty());
    assert!(
        s.list_events(a, e.id, 10).await.unwrap().is_empty(),
        "nothing after the last"
    );

    // The code never reaches the audit log.
    let audit = s.list_audit(Some(a), all()).await.unwrap().items;
    assert!(audit.iter().any(|e| e.action == "code.create"));
    assert!(
        audit
            .iter()
            .any(|e| e.action == "device.create" && e.actor.starts_with("code:"))
    );
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains(&code), "{text}");
}

pub async fn codes_race_and_expire(s: Arc<dyn Store>) {
    let store = s.clone();
    let s = &*s;
    let a = code_domain(s, "a.example", json!({"code_seconds": 1})).await;

    // Two phones with one code at the same moment: exactly one wins.
    let code = s
        .create_code(&actor(), a, None, "alice")
        .await
        .unwrap()
        .code;
    let racers: Vec<_> = (0..2)
        .map(|i| {
            let store = store.clone();
            let code = code.expose().to_owned();
            tokio::spawn(async move {
                store
                    .redeem_code(&code, &redemption(mac(&format!("0015650000a{i}"))))
                    .await
                    .unwrap()
                    .is_some()
            })
        })
        .collect();
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one redemption wins");

    // After valid_until a code is refused, before and after the sweep.
    let late = s.create_code(&actor(), a, None, "alice").await.unwrap();
    let kept = new_domain(s, "b.example").await.id;
    new_user(s, kept, "bob").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(
        s.redeem_code(late.code.expose(), &redemption(mac("001565bbbb01")))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.sweep_codes().await.unwrap(), 1);
    assert_eq!(s.sweep_codes().await.unwrap(), 0);
    let expired: Vec<Event> = events(s, a)
        .await
        .into_iter()
        .filter(|e| e.kind == "code.expired")
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].payload["user"], "alice");
    assert!(
        s.redeem_code(late.code.expose(), &redemption(mac("001565bbbb01")))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn rollouts_list_every_user(s: Arc<dyn Store>) {
    use provisor_domain::code::CodeState;
    let s = &*s;
    let a = code_domain(s, "a.example", json!({})).await;
    new_user(s, a, "bob").await;
    new_account(s, a, "bob", "200", "pw-200").await;
    let users = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();

    expect_invalid(
        s.create_rollout(
            &actor(),
            a,
            Some("Desk"),
            "T54W",
            &users(&["alice", "ghost"]),
        )
        .await,
        "users",
        "a rollout naming an unknown user",
    );
    expect_invalid(
        s.create_rollout(
            &actor(),
            a,
            Some("Desk"),
            "T54W",
            &users(&["alice", "alice"]),
        )
        .await,
        "users",
        "a rollout naming a user twice",
    );
    expect_invalid(
        s.create_rollout(&actor(), a, Some("Desk"), "T54W", &[])
            .await,
        "users",
        "an empty rollout",
    );
    let before = Utc::now();
    let r = s
        .create_rollout(
            &actor(),
            a,
            Some("Desk"),
            "Yealink T54W",
            &users(&["alice", "bob"]),
        )
        .await
        .unwrap();
    let after = Utc::now();
    assert_eq!((r.pending, r.registered, r.expired), (2, 0, 0));
    assert_eq!(r.category.as_deref(), Some("Desk"));
    assert_eq!(r.phone, "Yealink T54W");
    minutes_after(
        Some(r.valid_until),
        before,
        after,
        7 * 24 * 60,
        "valid 7 days by default",
    );
    let (_, entries) = s.rollout(a, r.id).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].user, "alice");
    assert_eq!(entries[1].user, "bob");
    assert!(
        entries
            .iter()
            .all(|e| e.state == CodeState::Pending && e.mac.is_none())
    );
    assert_ne!(entries[0].code.expose(), entries[1].code.expose());
    expect_not_found(
        s.rollout(new_domain(s, "b.example").await.id, r.id).await,
        "A's rollout from B",
    );

    // Registered one by one; the last completes the rollout.
    let m = mac("001565aabb41");
    let redeemed = s
        .redeem_code(entries[1].code.expose(), &redemption(m))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(redeemed.device.user.as_deref(), Some("bob"));
    assert_eq!(lines(&redeemed.device), [(1, "200".to_owned())]);
    let (progress, entries) = s.rollout(a, r.id).await.unwrap();
    assert_eq!((progress.pending, progress.registered), (1, 1));
    assert_eq!(entries[1].state, CodeState::Registered);
    assert_eq!(entries[1].mac, Some(m));
    assert!(entries[1].registered_at.is_some());
    assert!(progress.completed_at.is_none());
    s.redeem_code(entries[0].code.expose(), &redemption(mac("001565aabb42")))
        .await
        .unwrap()
        .unwrap();
    let (done, _) = s.rollout(a, r.id).await.unwrap();
    assert!(done.completed_at.is_some());
    let completed: Vec<Event> = events(s, a)
        .await
        .into_iter()
        .filter(|e| e.kind == "rollout.completed")
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].payload["registered"], 2);
    // The sweeper leaves rollouts' codes listed.
    s.sweep_codes().await.unwrap();
    assert_eq!(s.rollout(a, r.id).await.unwrap().1.len(), 2);
    // Listed newest first, page by page, with their counts, in their domain only.
    let second = s
        .create_rollout(&actor(), a, None, "", &users(&["bob"]))
        .await
        .unwrap();
    let (listed, sizes) = collect_pages(1, |p| s.list_rollouts(a, p)).await;
    assert_eq!(sizes, [1, 1]);
    assert_eq!(
        listed
            .iter()
            .map(|r| (r.id, r.pending, r.registered))
            .collect::<Vec<_>>(),
        [(second.id, 1, 0), (r.id, 0, 2)]
    );
    let b = new_domain(s, "c.example").await.id;
    assert!(s.list_rollouts(b, all()).await.unwrap().items.is_empty());
    let audit = serde_json::to_string(&s.list_audit(Some(a), all()).await.unwrap().items).unwrap();
    assert!(audit.contains("rollout.create") && !audit.contains(entries[0].code.expose()));
}

pub async fn rollouts_expire(s: Arc<dyn Store>) {
    use provisor_domain::code::CodeState;
    let s = &*s;
    let a = code_domain(s, "a.example", json!({"rollout_seconds": 1})).await;
    new_user(s, a, "bob").await;
    let r = s
        .create_rollout(
            &actor(),
            a,
            None,
            "",
            &["alice".to_owned(), "bob".to_owned()],
        )
        .await
        .unwrap();
    let (_, entries) = s.rollout(a, r.id).await.unwrap();
    s.redeem_code(entries[0].code.expose(), &redemption(mac("001565aabb51")))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Expired before the sweep, and refused.
    let (progress, entries) = s.rollout(a, r.id).await.unwrap();
    assert_eq!(
        (progress.pending, progress.registered, progress.expired),
        (0, 1, 1)
    );
    assert_eq!(entries[1].state, CodeState::Expired);
    assert!(
        s.redeem_code(entries[1].code.expose(), &redemption(mac("001565aabb52")))
            .await
            .unwrap()
            .is_none()
    );
    // The sweep keeps it listed, says so, and completes the rollout.
    assert_eq!(s.sweep_codes().await.unwrap(), 1);
    let (done, entries) = s.rollout(a, r.id).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].state, CodeState::Expired);
    assert!(done.completed_at.is_some());
    let log = events(s, a).await;
    let expired: Vec<&Event> = log.iter().filter(|e| e.kind == "code.expired").collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].payload["user"], "bob");
    assert_eq!(expired[0].payload["rollout_id"], r.id);
    let completed: Vec<&Event> = log
        .iter()
        .filter(|e| e.kind == "rollout.completed")
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(
        (
            completed[0].payload["registered"].as_i64(),
            completed[0].payload["expired"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(s.sweep_codes().await.unwrap(), 0, "expired once");
}

// ---- innovaphone ----

fn pbx_phone(
    m: &str,
    user: &str,
    password: &str,
    code: Option<&str>,
) -> provisor_domain::innovaphone::PbxPhone {
    let new_user: NewUser = input(json!({"username": user, "display_name": "Test User"}));
    let account: NewSipAccount = input(json!({
        "sip_user": user, "auth_user": user, "password": password,
        "display_name": "Test User", "registrar": "pbx.a.example",
    }));
    provisor_domain::innovaphone::PbxPhone {
        mac: mac(m),
        hwid: m.to_owned(),
        code: code.map(str::to_owned),
        user: new_user.validate().unwrap(),
        account: account.validate().unwrap(),
    }
}

pub async fn innovaphone_settings_keep_secrets(s: Arc<dyn Store>) {
    use provisor_domain::innovaphone::InnovaphonePatch;
    let s = &*s;
    let a = code_domain(s, "a.example", json!({})).await;
    let b = code_domain(s, "b.example", json!({})).await;
    assert!(!s.innovaphone(a).await.unwrap().app_password_set);
    let patch: InnovaphonePatch = input(json!({
        "app_password": "app-secret", "admin_password": "admin-secret",
        "pbx_domain": "PBX.A.example", "default_category": "Desk",
    }));
    let set = s
        .set_innovaphone(&actor(), a, &patch.validate().unwrap())
        .await
        .unwrap();
    assert!(set.app_password_set && set.admin_password_set);
    assert_eq!(set.pbx_domain, "pbx.a.example");
    assert_eq!(set.default_category.as_deref(), Some("Desk"));
    let found = s.innovaphone_domain("A.example").await.unwrap().unwrap();
    assert_eq!(found.id, a);
    assert_eq!(found.app_password.unwrap().expose(), "app-secret");
    assert_eq!(found.admin_password.unwrap().expose(), "admin-secret");
    let other = s.innovaphone_domain("b.example").await.unwrap().unwrap();
    assert!(other.app_password.is_none(), "domain b has no password");
    assert!(
        s.innovaphone_domain("nope.example")
            .await
            .unwrap()
            .is_none()
    );
    // null clears; absent keeps.
    let patch: InnovaphonePatch = input(json!({"admin_password": null}));
    let set = s
        .set_innovaphone(&actor(), a, &patch.validate().unwrap())
        .await
        .unwrap();
    assert!(set.app_password_set && !set.admin_password_set);
    let patch: InnovaphonePatch = input(json!({"default_category": "Nope"}));
    expect_invalid(
        s.set_innovaphone(&actor(), a, &patch.validate().unwrap())
            .await,
        "default_category",
        "an unknown category",
    );
    let _ = b;
    let audit = s.list_audit(Some(a), all()).await.unwrap().items;
    let text = serde_json::to_string(&audit).unwrap();
    assert!(text.contains("domain.innovaphone"));
    assert!(!text.contains("app-secret") && !text.contains("admin-secret"));
}

pub async fn pbx_phone_provisioning_is_idempotent(s: Arc<dyn Store>) {
    use provisor_domain::innovaphone::InnovaphonePatch;
    let s = &*s;
    let a = code_domain(s, "a.example", json!({})).await;
    new_category(s, a, "ThirdParty").await;
    let patch: InnovaphonePatch = input(json!({"default_category": "ThirdParty"}));
    s.set_innovaphone(&actor(), a, &patch.validate().unwrap())
        .await
        .unwrap();
    let phone = pbx_phone("112233445566", "test_user", "sip-secret", None);
    let first = s.provision_pbx_phone(&actor(), a, &phone).await.unwrap();
    assert!(first.created);
    assert_eq!(first.device.user.as_deref(), Some("test_user"));
    assert_eq!(first.device.category.as_deref(), Some("ThirdParty"));
    assert_eq!(first.device.lines.len(), 1);
    assert_eq!(first.device.lines[0].sip_user, "test_user");
    let account = first.device.lines[0].account_id;
    assert_eq!(
        s.account_password(a, account).await.unwrap().expose(),
        "sip-secret"
    );
    assert_eq!(
        s.user(a, "test_user").await.unwrap().display_name,
        "Test User"
    );
    let known = s.innovaphone_device(a, mac("112233445566")).await.unwrap();
    assert_eq!(
        (known.kind.as_str(), known.hwid.as_str()),
        ("pbx-phone", "112233445566")
    );
    let audits = s.list_audit(Some(a), all()).await.unwrap().items.len();
    let provisioned = events(s, a).await.len();
    // A replay changes nothing and writes nothing.
    let again = s.provision_pbx_phone(&actor(), a, &phone).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.device.lines, first.device.lines);
    assert_eq!(
        s.list_audit(Some(a), all()).await.unwrap().items.len(),
        audits
    );
    assert_eq!(events(s, a).await.len(), provisioned);
    // A new password updates the account.
    let changed = pbx_phone("112233445566", "test_user", "new-secret", None);
    s.provision_pbx_phone(&actor(), a, &changed).await.unwrap();
    assert_eq!(
        s.account_password(a, account).await.unwrap().expose(),
        "new-secret"
    );
    // A live code of the domain names the category and is used up.
    let code = s
        .create_code(&actor(), a, Some("Desk"), "alice")
        .await
        .unwrap();
    let with_code = pbx_phone(
        "112233445577",
        "bob",
        "bob-secret",
        Some(code.code.expose()),
    );
    let r = s
        .provision_pbx_phone(&actor(), a, &with_code)
        .await
        .unwrap();
    assert_eq!(r.device.category.as_deref(), Some("Desk"));
    assert!(
        s.redeem_code(code.code.expose(), &redemption(mac("aabbccddeeff")))
            .await
            .unwrap()
            .is_none(),
        "the code was used"
    );
}

pub async fn pbx_phone_refusals_write_nothing(s: Arc<dyn Store>) {
    let s = &*s;
    let a = code_domain(s, "a.example", json!({})).await;
    let b = code_domain(s, "b.example", json!({})).await;
    let new: NewDevice = input(json!({"mac": "112233445566"}));
    s.create_device(&actor(), b, &new.validate().unwrap())
        .await
        .unwrap();
    let audits = s.list_audit(Some(a), all()).await.unwrap().items.len();
    // The MAC is another domain's: nothing of the user is written either.
    expect_conflict(
        s.provision_pbx_phone(
            &actor(),
            a,
            &pbx_phone("112233445566", "carol", "pw-carol", None),
        )
        .await,
        "a MAC of another domain",
    );
    expect_not_found_user(s, a, "carol").await;
    // The SIP account is another user's.
    expect_conflict(
        s.provision_pbx_phone(&actor(), a, &pbx_phone("112233445599", "100", "pw", None))
            .await,
        "SIP account 100 is alice's",
    );
    expect_not_found_user(s, a, "100").await;
    assert_eq!(
        s.list_audit(Some(a), all()).await.unwrap().items.len(),
        audits
    );
    assert!(s.device(a, mac("112233445599")).await.is_err());
}

async fn expect_not_found_user(s: &dyn Store, d: DomainId, name: &str) {
    match s.user(d, name).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("user {name} should not exist: {other:?}"),
    }
}

pub async fn sysclients_join_with_a_code_of_their_domain(s: Arc<dyn Store>) {
    use provisor_domain::innovaphone::{EthIf, SysclientJoin, SysclientReport};
    use provisor_domain::secret::SecretString;
    let s = &*s;
    let a = code_domain(s, "a.example", json!({})).await;
    let b = code_domain(s, "b.example", json!({})).await;
    let code = s
        .create_code(&actor(), a, Some("Desk"), "alice")
        .await
        .unwrap();
    let join = SysclientJoin {
        password: SecretString::new("sysclient-password"),
        report: SysclientReport {
            product: "IP222".into(),
            version: "13r2".into(),
            platform: "PHONE".into(),
            interfaces: vec![],
        },
    };
    let mut r = redemption(mac("009033400001"));
    r.vendor = "innovaphone".into();
    r.within = Some(b);
    r.sysclient = Some(join);
    assert!(
        s.redeem_code(code.code.expose(), &r)
            .await
            .unwrap()
            .is_none(),
        "a code of domain a does not work at domain b"
    );
    assert!(s.sysclient(b, r.mac).await.unwrap().is_none());
    r.within = Some(a);
    let redeemed = s
        .redeem_code(code.code.expose(), &r)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(redeemed.domain, a);
    assert_eq!(redeemed.device.category.as_deref(), Some("Desk"));
    let sc = s.sysclient(a, r.mac).await.unwrap().unwrap();
    assert_eq!(sc.password.expose(), "sysclient-password");
    assert_eq!(sc.device_id, redeemed.device.id);
    assert!(
        s.sysclient(b, r.mac).await.unwrap().is_none(),
        "only in its domain"
    );
    let report = SysclientReport {
        product: "IP232".into(),
        version: "14r1".into(),
        platform: "PHONE".into(),
        interfaces: vec![EthIf {
            name: "ETH0".into(),
            ipv4: "10.0.0.9".into(),
            ipv6: String::new(),
        }],
    };
    s.sysclient_seen(a, r.mac, &report, Some(ip("192.0.2.9")))
        .await
        .unwrap();
    let device = s.device(a, r.mac).await.unwrap();
    assert_eq!(device.model, "IP232");
    assert_eq!(device.firmware, "14r1");
    assert_eq!(device.last_ip.as_deref(), Some("192.0.2.9"));
    let known = s.innovaphone_device(a, r.mac).await.unwrap();
    assert_eq!(known.kind, "sysclient");
    assert_eq!(known.interfaces[0].ipv4, "10.0.0.9");
    assert!(known.last_seen.is_some());
    assert!(matches!(
        s.innovaphone_device(b, r.mac).await,
        Err(StoreError::NotFound(_))
    ));
    // A device without a sysclient record is not one.
    assert!(s.sysclient(a, mac("009033400002")).await.unwrap().is_none());
}

// ---- update jobs ----

pub async fn jobs_progress_through_check_ins(s: Arc<dyn Store>) {
    use provisor_domain::job::{FirmwarePin, JobPatch, JobState, NewJob};
    let s = &*s;
    let a = new_domain_with_policy(s, "a.example", json!({"check_in_seconds": 0}))
        .await
        .id;
    let b = new_domain_with_policy(s, "b.example", json!({})).await.id;
    new_category(s, a, "Desk").await;
    let m = mac("001565000001");
    let new: NewDevice =
        input(json!({"mac": m, "vendor": "yealink", "model": "T54W", "category": "Desk"}));
    let device = s
        .create_device(&actor(), a, &new.validate().unwrap())
        .await
        .unwrap();
    let spec: NewJob = input(
        json!({"kind": "software", "category": "Desk", "url": "https://fw/2.rom", "version": "2.0", "max_offers": 1}),
    );
    let job = s
        .create_job(&actor(), a, &spec.validate().unwrap())
        .await
        .unwrap();
    let spec: NewJob =
        input(json!({"kind": "config", "config_type": "language", "params": {"language": "de"}}));
    let lang = s
        .create_job(&actor(), a, &spec.validate().unwrap())
        .await
        .unwrap();
    let p = phone(s, m).await;
    assert_eq!(p.jobs.jobs, vec![job.id, lang.id]);
    assert_eq!(
        p.jobs.firmware.as_ref().unwrap().url.as_deref(),
        Some("https://fw/2.rom")
    );
    assert_eq!(
        p.layers[2]["language"], "de",
        "the job layer is after the category's"
    );
    assert_eq!(s.job(a, job.id).await.unwrap().1.pending, 1);
    let t0 = Utc::now();
    let seen = |firmware: &str, secs: i64| Contact {
        jobs: vec![job.id, lang.id],
        vendor: "yealink".into(),
        model: "T54W".into(),
        firmware: firmware.into(),
        provisioned: true,
        ..contact(
            m,
            Some(device.id),
            "10.0.0.1",
            t0 + TimeDelta::seconds(secs),
        )
    };
    s.record_contacts(&[seen("1.0", 0)]).await.unwrap();
    let (_, n) = s.job(a, job.id).await.unwrap();
    assert_eq!((n.pending, n.offered, n.applied, n.failed), (0, 1, 0, 0));
    s.record_contacts(&[seen("1.0", 10)]).await.unwrap();
    let (_, n) = s.job(a, job.id).await.unwrap();
    assert_eq!(
        (n.offered, n.failed),
        (0, 1),
        "offered once, back without it: failed"
    );
    let (_, n) = s.job(a, lang.id).await.unwrap();
    assert_eq!(n.applied, 1, "the config job: it came back for its file");
    let kinds: Vec<String> = events(s, a).await.into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"job.failed".to_owned()), "{kinds:?}");
    s.record_contacts(&[seen("2.0", 20)]).await.unwrap();
    let (done, n) = s.job(a, job.id).await.unwrap();
    assert_eq!(n.applied, 1, "it reports the version");
    assert!(done.completed_at.is_some());
    let kinds: Vec<String> = events(s, a).await.into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"job.completed".to_owned()), "{kinds:?}");
    let listed = s.job_devices(a, job.id).await.unwrap();
    assert_eq!(listed[0].offers, 3);
    // Tenant scoping, cancel, pin.
    assert!(matches!(
        s.job(b, job.id).await,
        Err(StoreError::NotFound(_))
    ));
    let cancel = JobPatch {
        state: Some(JobState::Cancelled),
        percent: None,
    };
    expect_not_found(
        s.update_job(&actor(), b, job.id, &cancel).await,
        "another domain's job",
    );
    s.update_job(&actor(), a, job.id, &cancel).await.unwrap();
    assert!(phone(s, m).await.jobs.firmware.is_none());
    expect_conflict(
        s.update_job(
            &actor(),
            a,
            job.id,
            &JobPatch {
                state: Some(JobState::Active),
                percent: None,
            },
        )
        .await,
        "a cancelled job stays cancelled",
    );
    let pin: FirmwarePin = input(json!({"url": "https://fw/pinned.rom", "version": "1.5"}));
    let pin = pin.validate().unwrap();
    s.set_firmware_pin(&actor(), a, m, Some(&pin))
        .await
        .unwrap();
    assert_eq!(phone(s, m).await.jobs.firmware.unwrap().version, "1.5");
    assert!(s.firmware_pin(a, m).await.unwrap().is_some());
    s.set_firmware_pin(&actor(), a, m, None).await.unwrap();
    assert!(s.firmware_pin(a, m).await.unwrap().is_none());
    // A paused job does not complete; resumed, it has pending devices again; a pinned
    // device is not pending.
    let new: NewDevice = input(
        json!({"mac": "001565000002", "vendor": "yealink", "model": "T54W", "category": "Desk"}),
    );
    s.create_device(&actor(), a, &new.validate().unwrap())
        .await
        .unwrap();
    let spec: NewJob = input(
        json!({"kind": "software", "category": "Desk", "url": "https://fw/3.rom", "version": "3.0"}),
    );
    let third = s
        .create_job(&actor(), a, &spec.validate().unwrap())
        .await
        .unwrap();
    let at_three = |firmware: &str, secs: i64| Contact {
        jobs: vec![third.id],
        ..seen(firmware, secs)
    };
    s.record_contacts(&[at_three("2.0", 30)]).await.unwrap();
    let pause = JobPatch {
        state: Some(JobState::Paused),
        percent: None,
    };
    s.update_job(&actor(), a, third.id, &pause).await.unwrap();
    s.record_contacts(&[at_three("3.0", 40)]).await.unwrap();
    let (paused, n) = s.job(a, third.id).await.unwrap();
    assert_eq!((n.pending, n.applied), (0, 1));
    assert!(
        paused.completed_at.is_none(),
        "a paused job does not complete"
    );
    let resume = JobPatch {
        state: Some(JobState::Active),
        percent: None,
    };
    s.update_job(&actor(), a, third.id, &resume).await.unwrap();
    assert_eq!(
        s.job(a, third.id).await.unwrap().1.pending,
        1,
        "the other device"
    );
    s.set_firmware_pin(&actor(), a, mac("001565000002"), Some(&pin))
        .await
        .unwrap();
    assert_eq!(
        s.job(a, third.id).await.unwrap().1.pending,
        0,
        "pinned: not pending"
    );
    let completed: Vec<i64> = events(s, a)
        .await
        .into_iter()
        .filter(|e| e.kind == "job.completed")
        .map(|e| e.payload["job_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        completed,
        vec![job.id, lang.id],
        "each finished job once, not the paused one"
    );
    // A job for an unknown category or firmware file is refused.
    let spec: NewJob =
        input(json!({"kind": "software", "category": "Nope", "url": "https://x", "version": "1"}));
    expect_invalid(
        s.create_job(&actor(), a, &spec.validate().unwrap()).await,
        "category",
        "unknown category",
    );
    let spec: NewJob = input(json!({"kind": "software", "firmware": "none.rom", "version": "1"}));
    expect_invalid(
        s.create_job(&actor(), a, &spec.validate().unwrap()).await,
        "firmware",
        "unknown file",
    );
}

pub async fn admins_and_sessions(s: Arc<dyn Store>) {
    use crate::{Session, SessionLifetime, SessionOf};
    use std::time::Duration;
    let s = &*s;
    let (a, b) = two_domains(s).await;
    let op = s
        .create_admin(&actor(), "Root", Role::Operator, None, "hash-root")
        .await
        .unwrap();
    assert_eq!(
        (op.name.as_str(), op.role, op.domain.as_deref()),
        ("root", Role::Operator, None)
    );
    let ann = s
        .create_admin(&actor(), "ann", Role::DomainAdmin, Some(a), "hash-ann")
        .await
        .unwrap();
    assert_eq!(ann.domain.as_deref(), Some("a.example"));
    expect_conflict(
        s.create_admin(&actor(), "ROOT", Role::Operator, None, "x")
            .await,
        "a name taken (in another case)",
    );
    expect_invalid(
        s.create_admin(&actor(), "x", Role::DomainAdmin, None, "x")
            .await,
        "domain",
        "a domain admin without a domain",
    );
    expect_invalid(
        s.create_admin(&actor(), "x y", Role::Operator, None, "x")
            .await,
        "name",
        "a name with a space",
    );
    let login = s.admin_login(" Ann ").await.unwrap().unwrap();
    assert_eq!(
        (login.domain, login.password_hash.as_str()),
        (Some(a), "hash-ann")
    );
    assert!(s.admin_login("nobody").await.unwrap().is_none());
    assert_eq!(s.list_admins(None).await.unwrap().len(), 2);
    assert_eq!(
        s.list_admins(Some(a)).await.unwrap(),
        std::slice::from_ref(&ann)
    );
    assert!(s.list_admins(Some(b)).await.unwrap().is_empty());
    expect_not_found(
        s.delete_admin(&actor(), Some(b), "ann").await,
        "A's admin deleted in B's scope",
    );

    let life = SessionLifetime {
        absolute: Duration::from_secs(3600),
        idle: Duration::from_secs(600),
    };
    let idle = life.idle;
    s.create_session("s-ann", &SessionOf::Admin(ann.id), life)
        .await
        .unwrap();
    assert_eq!(
        s.session("s-ann", idle).await.unwrap(),
        Some(Session::Admin {
            admin: ann.clone(),
            domain: Some(a)
        })
    );
    assert_eq!(s.session("s-other", idle).await.unwrap(), None);
    // A new password ends the sessions signed in with the old one.
    s.set_admin_password(&actor(), Some(a), "ann", "hash-ann-2")
        .await
        .unwrap();
    assert_eq!(s.session("s-ann", idle).await.unwrap(), None);
    assert_eq!(
        s.admin_login("ann").await.unwrap().unwrap().password_hash,
        "hash-ann-2"
    );
    // Signing out ends a session; removing the admin ends theirs.
    s.create_session("s-ann-2", &SessionOf::Admin(ann.id), life)
        .await
        .unwrap();
    s.create_session("s-ann-3", &SessionOf::Admin(ann.id), life)
        .await
        .unwrap();
    s.end_session("s-ann-2").await.unwrap();
    assert_eq!(s.session("s-ann-2", idle).await.unwrap(), None);
    assert!(s.session("s-ann-3", idle).await.unwrap().is_some());
    s.delete_admin(&actor(), None, "ann").await.unwrap();
    assert_eq!(s.session("s-ann-3", idle).await.unwrap(), None);

    // A user's session lasts while the user is enabled and keeps their password.
    new_user(s, a, "alice").await;
    let alice = SessionOf::User {
        domain: a,
        username: "alice".into(),
    };
    expect_not_found(
        s.create_session(
            "s-x",
            &SessionOf::User {
                domain: b,
                username: "alice".into(),
            },
            life,
        )
        .await,
        "a session of a user of another domain",
    );
    s.create_session("s-alice", &alice, life).await.unwrap();
    assert_eq!(
        s.session("s-alice", idle).await.unwrap(),
        Some(Session::User {
            domain: a,
            username: "alice".into()
        })
    );
    let off: UserPatch = input(json!({"enabled": false}));
    s.update_user(&actor(), a, "alice", &off, None)
        .await
        .unwrap();
    assert_eq!(s.session("s-alice", idle).await.unwrap(), None);
    let on: UserPatch = input(json!({"enabled": true}));
    s.update_user(&actor(), a, "alice", &on, None)
        .await
        .unwrap();
    assert!(s.session("s-alice", idle).await.unwrap().is_some());
    s.update_user(&actor(), a, "alice", &on, Some("new-hash"))
        .await
        .unwrap();
    assert_eq!(s.session("s-alice", idle).await.unwrap(), None);

    // Sessions end at their idle end and at their absolute end.
    let short = SessionLifetime {
        absolute: Duration::from_secs(3600),
        idle: Duration::from_millis(300),
    };
    s.create_session("s-idle", &SessionOf::Admin(op.id), short)
        .await
        .unwrap();
    assert!(s.session("s-idle", short.idle).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.session("s-idle", short.idle).await.unwrap(), None);
    let brief = SessionLifetime {
        absolute: Duration::from_millis(300),
        idle: Duration::from_secs(3600),
    };
    s.create_session("s-brief", &SessionOf::Admin(op.id), brief)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.session("s-brief", idle).await.unwrap(), None);
    // A used session's idle end moves on.
    s.create_session("s-used", &SessionOf::Admin(op.id), short)
        .await
        .unwrap();
    assert!(s.session("s-used", idle).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        s.session("s-used", idle).await.unwrap().is_some(),
        "used within its idle time, the session lasts longer"
    );
    let audit = serde_json::to_string(&s.list_audit(None, all()).await.unwrap().items).unwrap();
    assert!(audit.contains("admin.create") && !audit.contains("hash-root"));
}

/// Work one node does at a time: a named lease, and each webhook's delivery lease.
pub async fn leases_give_work_to_one_node(s: Arc<dyn Store>) {
    let s = &*s;
    let wait = || tokio::time::sleep(std::time::Duration::from_millis(30));
    // A named lease: held by one node until it runs out.
    assert!(s.take_lease("sweeper", "node-a", 60_000).await.unwrap());
    assert!(!s.take_lease("sweeper", "node-b", 60_000).await.unwrap());
    assert!(
        s.take_lease("sweeper", "node-a", 10).await.unwrap(),
        "renewed by its holder"
    );
    wait().await;
    assert!(
        s.take_lease("sweeper", "node-b", 60_000).await.unwrap(),
        "run out: taken over"
    );
    assert!(!s.take_lease("sweeper", "node-a", 60_000).await.unwrap());

    // A webhook with an event to deliver: claimed by one node.
    let a = code_domain(s, "hooks.example", json!({})).await;
    let hook = s
        .create_webhook(
            &actor(),
            a,
            "http://127.0.0.1:9/hook",
            &provisor_domain::secret::SecretString::new("s".repeat(16)),
        )
        .await
        .unwrap();
    let code = s
        .create_code(&actor(), a, Some("Desk"), "alice")
        .await
        .unwrap();
    s.redeem_code(code.code.expose(), &redemption(mac("001565aabb01")))
        .await
        .unwrap()
        .expect("redeemed: an event");
    let claimed = s.claim_webhooks("node-a", 60_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|w| w.id).collect::<Vec<_>>(), [hook.id]);
    assert!(
        s.claim_webhooks("node-b", 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "one node at a time"
    );
    let event = events(s, a).await[0].id;
    let lease = |node| WebhookLease {
        webhook: hook.id,
        node,
        lease_ms: 10,
    };
    // Only the holder records an attempt (and its lease is renewed by it).
    assert!(
        !s.record_delivery(lease("node-b"), event, Some(500), "x", Some(0))
            .await
            .unwrap()
    );
    assert!(
        s.record_delivery(lease("node-a"), event, Some(500), "answered 500", Some(0))
            .await
            .unwrap()
    );
    assert_eq!(s.deliveries(a, hook.id, 10).await.unwrap().len(), 1);
    // node-a dies: its lease runs out, node-b takes the webhook over from its cursor.
    wait().await;
    let taken = s.claim_webhooks("node-b", 60_000, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        taken[0].cursor, hook.cursor,
        "the event was not delivered yet"
    );
    assert!(
        !s.record_delivery(lease("node-a"), event, Some(200), "", None)
            .await
            .unwrap(),
        "the old holder's late answer is not recorded"
    );
    assert!(
        s.record_delivery(lease("node-b"), event, Some(200), "", None)
            .await
            .unwrap()
    );
    // Given back, delivered: nothing left to claim.
    s.release_webhook(hook.id, "node-b").await.unwrap();
    assert!(
        s.claim_webhooks("node-a", 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Failure counts shared by nodes: changed in one transaction that holds their rows.
pub async fn limits_are_counted_in_one_transaction(s: Arc<dyn Store>) {
    let keys = vec!["guess-ip:192.0.2.1".to_owned(), "code-all".to_owned()];
    // Fresh rows for keys never seen, in the order asked.
    let mut seen = Vec::new();
    s.with_limits(&keys, &mut |rows: &mut [crate::LimitRow]| {
        seen = rows.iter().map(|r| (r.key.clone(), r.failures)).collect();
    })
    .await
    .unwrap();
    assert_eq!(
        seen,
        [
            ("guess-ip:192.0.2.1".to_owned(), 0),
            ("code-all".to_owned(), 0)
        ]
    );
    // Twenty counts at once (as from several nodes): none lost.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (s, keys) = (s.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            s.with_limits(&keys, &mut |rows: &mut [crate::LimitRow]| {
                for r in rows {
                    r.failures += 1;
                }
            })
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut counts = Vec::new();
    s.with_limits(&keys, &mut |rows: &mut [crate::LimitRow]| {
        counts = rows.iter().map(|r| r.failures).collect();
        rows[1].locked_until = 0;
    })
    .await
    .unwrap();
    assert_eq!(counts, [20, 20]);
    // Pruned once old (and not locked).
    let future = chrono::Utc::now().timestamp_millis() + 1000;
    assert_eq!(s.prune_limits(future).await.unwrap(), 2);
    s.with_limits(&keys[..1], &mut |rows: &mut [crate::LimitRow]| {
        counts = vec![rows[0].failures];
    })
    .await
    .unwrap();
    assert_eq!(counts, [0], "counting starts afresh");
}
