//! Google Cloud projects: what a caller's identity reveals, and what a valid project ID looks like.

use std::fmt;

/// A Google Cloud project, as far as a caller's identity reveals it.
///
/// `Display` prints the ID (`my-app`, or `example.com:proj` for a domain-scoped project) or the number.
///
/// ```
/// use idgate_core::identity::Project;
///
/// assert_eq!(Project::Id("example.com:proj".into()).to_string(), "example.com:proj");
/// assert_eq!(Project::Number(42).to_string(), "42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Project {
    /// A project ID: `my-app`, or `example.com:proj` for a domain-scoped project.
    Id(String),
    /// A project number: all the Compute Engine default service account reveals.
    Number(u64),
}

impl Project {
    /// The project ID, if this is one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Id(id) => Some(id),
            Self::Number(_) => None,
        }
    }

    /// The project number, if this is one.
    pub fn number(&self) -> Option<u64> {
        match self {
            Self::Id(_) => None,
            Self::Number(n) => Some(*n),
        }
    }
}

impl fmt::Display for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => f.write_str(id),
            Self::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Whether `s` is a syntactically valid project ID: 6 to 30 characters of `[a-z0-9-]`, starting with a letter and
/// not ending with a hyphen; or a domain-scoped ID `domain:project` (e.g. `example.com:my-project`).
///
/// ```
/// use idgate_core::identity::is_valid_project_id;
///
/// assert!(is_valid_project_id("my-project"));
/// assert!(is_valid_project_id("example.com:my-project"));
/// assert!(!is_valid_project_id("My-Project"));
/// assert!(!is_valid_project_id("short"));
/// assert!(!is_valid_project_id("*"));
/// ```
pub fn is_valid_project_id(s: &str) -> bool {
    check_project_id(s).is_ok()
}

/// Checks a project ID (plain or domain-scoped), saying what is wrong.
pub(crate) fn check_project_id(s: &str) -> Result<(), &'static str> {
    match s.split_once(':') {
        Some((domain, project)) => {
            check_dns_domain(domain)
                .map_err(|_| "the part before `:` must be a domain such as `example.com`")?;
            check_plain_project_id(project)
        }
        None => check_plain_project_id(s),
    }
}

/// A project ID without domain: `[a-z][a-z0-9-]{4,28}[a-z0-9]`.
pub(crate) fn check_plain_project_id(s: &str) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    if !(6..=30).contains(&bytes.len()) {
        return Err("a project ID has 6 to 30 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("a project ID has only lowercase letters, digits and hyphens");
    }
    if !bytes[0].is_ascii_lowercase() {
        return Err("a project ID starts with a lowercase letter");
    }
    if bytes[bytes.len() - 1] == b'-' {
        return Err("a project ID does not end with a hyphen");
    }
    Ok(())
}

/// A lowercase DNS name with at least two labels (`example.com`): labels of `[a-z0-9-]`, 1 to 63 characters,
/// neither starting nor ending with a hyphen; at most 253 characters.
pub(crate) fn check_dns_domain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("a domain has 1 to 253 characters");
    }
    let mut labels = 0;
    for label in s.split('.') {
        labels += 1;
        let bytes = label.as_bytes();
        if bytes.is_empty() || bytes.len() > 63 {
            return Err("each dot-separated part of a domain has 1 to 63 characters");
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        {
            return Err("a domain has only lowercase ASCII letters, digits, hyphens and dots");
        }
        if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
            return Err("no part of a domain starts or ends with a hyphen");
        }
    }
    if labels < 2 {
        return Err("a domain has at least two parts, such as `example.com`");
    }
    Ok(())
}
