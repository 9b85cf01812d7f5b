//! App Engine's names derived from a project ID: the default hostname, bucket and service account, and the
//! application ID's partition prefix.

/// The App Engine region IDs idgate knows, by region (the compute region name, and App Engine's own location
/// name where it differs: `us-central`, `europe-west`).
///
/// Google assigns each region a short code that apps created since February 2020 carry in their default hostname
/// (`PROJECT.REGION_ID.r.appspot.com`), and does not publish the mapping as data
/// (<https://cloud.google.com/appengine/docs/standard/how-requests-are-routed#region-id>: "an abbreviated code
/// that Google assigns based on the region you select"). The entries below are the ones seen in Google's
/// documentation and `gcloud app create` (`--region` examples `us-central`, `europe-west`) together with their
/// hostnames; any other region gives the legacy hostname unless a code is passed to
/// [`app_engine_default_hostname`].
const REGION_IDS: &[(&str, &str)] = &[
    ("us-central", "uc"),
    ("us-central1", "uc"),
    ("us-east1", "ue"),
    ("europe-west", "ew"),
    ("europe-west1", "ew"),
];

/// The App Engine region ID (the `REGION_ID` of `PROJECT.REGION_ID.r.appspot.com`) of `region`, when idgate
/// knows it (a short table: see [`app_engine_default_hostname`]).
///
/// ```
/// use idgate_core::app::app_engine_region_id;
///
/// assert_eq!(app_engine_region_id("us-central1"), Some("uc"));
/// assert_eq!(app_engine_region_id("europe-west"), Some("ew"));
/// assert_eq!(app_engine_region_id("mars-north1"), None);
/// ```
#[must_use]
pub fn app_engine_region_id(region: &str) -> Option<&'static str> {
    REGION_IDS
        .iter()
        .find(|(name, _)| *name == region)
        .map(|(_, code)| *code)
}

/// The application ID without its partition prefix: App Engine's `GAE_APPLICATION` (`e~my-app`) and first
/// generation's `APPLICATION_ID` (`s~my-app`) carry one, through the first `~`.
///
/// ```
/// use idgate_core::app::strip_partition;
///
/// assert_eq!(strip_partition("e~my-app"), "my-app");
/// assert_eq!(strip_partition("s~example.com:my-app"), "example.com:my-app");
/// assert_eq!(strip_partition("my-app"), "my-app");
/// ```
#[must_use]
pub fn strip_partition(application_id: &str) -> &str {
    application_id
        .split_once('~')
        .map_or(application_id, |(_, id)| id)
}

/// A plain project ID (not domain-scoped), if `project_id` is a valid one.
fn plain(project_id: &str) -> Option<&str> {
    crate::identity::check_plain_project_id(project_id)
        .ok()
        .map(|()| project_id)
}

/// The default version's hostname of the project's App Engine app: `PROJECT.REGION_ID.r.appspot.com` when the
/// region ID is given (see [`app_engine_region_id`]), else the legacy `PROJECT.appspot.com` (the only form of
/// apps created before February 2020, and still served for them). `None` for a domain-scoped project
/// (`example.com:proj`), whose hostname idgate does not derive, and for an invalid project ID.
///
/// ```
/// use idgate_core::app::app_engine_default_hostname;
///
/// assert_eq!(app_engine_default_hostname("my-app", Some("uc")).as_deref(), Some("my-app.uc.r.appspot.com"));
/// assert_eq!(app_engine_default_hostname("my-app", None).as_deref(), Some("my-app.appspot.com"));
/// assert_eq!(app_engine_default_hostname("example.com:my-app", None), None);
/// ```
#[must_use]
pub fn app_engine_default_hostname(project_id: &str, region_id: Option<&str>) -> Option<String> {
    let project = plain(project_id)?;
    match region_id {
        Some(code)
            if !code.is_empty()
                && code.len() <= 8
                && code.bytes().all(|b| b.is_ascii_lowercase()) =>
        {
            Some(format!("{project}.{code}.r.appspot.com"))
        }
        Some(_) => None,
        None => Some(format!("{project}.appspot.com")),
    }
}

/// The project's default Cloud Storage bucket (App Engine's "default bucket"): `PROJECT.appspot.com`. `None` for
/// a domain-scoped or invalid project ID.
///
/// ```
/// assert_eq!(idgate_core::app::default_bucket_name("my-app").as_deref(), Some("my-app.appspot.com"));
/// ```
#[must_use]
pub fn default_bucket_name(project_id: &str) -> Option<String> {
    plain(project_id).map(|p| format!("{p}.appspot.com"))
}

/// The project's App Engine default service account: `PROJECT@appspot.gserviceaccount.com`, and for a
/// domain-scoped project `example.com:proj`, `proj.example.com@appspot.gserviceaccount.com` (the inverse of
/// [`project_of_service_account`](crate::identity::project_of_service_account)). `None` for an invalid project ID.
///
/// ```
/// use idgate_core::app::app_engine_default_service_account;
///
/// assert_eq!(
///     app_engine_default_service_account("my-app").as_deref(),
///     Some("my-app@appspot.gserviceaccount.com")
/// );
/// assert_eq!(
///     app_engine_default_service_account("example.com:my-app").as_deref(),
///     Some("my-app.example.com@appspot.gserviceaccount.com")
/// );
/// ```
#[must_use]
pub fn app_engine_default_service_account(project_id: &str) -> Option<String> {
    if !crate::identity::is_valid_project_id(project_id) {
        return None;
    }
    Some(match project_id.split_once(':') {
        Some((domain, project)) => format!("{project}.{domain}@appspot.gserviceaccount.com"),
        None => format!("{project_id}@appspot.gserviceaccount.com"),
    })
}

/// The region of a zone: the zone without its last `-` suffix (`us-central1-a` → `us-central1`; Cloud Run's
/// `us-central1-1` → `us-central1`). `None` when `zone` has no such suffix.
///
/// ```
/// use idgate_core::app::region_of_zone;
///
/// assert_eq!(region_of_zone("us-central1-a"), Some("us-central1"));
/// assert_eq!(region_of_zone("europe-west1-1"), Some("europe-west1"));
/// assert_eq!(region_of_zone("nowhere"), None);
/// assert_eq!(region_of_zone("us--a"), None);
/// ```
#[must_use]
pub fn region_of_zone(zone: &str) -> Option<&str> {
    let (region, suffix) = zone.rsplit_once('-')?;
    // A region is `area-locationN`: it has a dash of its own (not at either end), and the zone's suffix is short.
    let region_ok = region.contains('-') && !region.starts_with('-') && !region.ends_with('-');
    let suffix_ok =
        (1..=2).contains(&suffix.len()) && suffix.bytes().all(|b| b.is_ascii_alphanumeric());
    (region_ok && suffix_ok).then_some(region)
}
