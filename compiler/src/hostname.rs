//! Intersection of a listener's hostname with a route's hostnames (Gateway API rules: exact names,
//! and `*.suffix` wildcards that match one or more labels).

/// The hostnames a route serves on a listener, or `None` when the route's hostnames and the
/// listener's do not intersect (the route then does not attach to that listener).
pub(crate) fn effective_hostnames(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let route = route.iter().map(|h| h.to_ascii_lowercase());
    let mut hostnames: Vec<String> = Vec::new();
    match listener {
        None => route.for_each(|h| push_unique(&mut hostnames, h)),
        Some(listener) if route.len() == 0 => hostnames.push(listener.to_string()),
        Some(listener) => {
            route
                .filter_map(|h| intersect(listener, &h))
                .for_each(|h| push_unique(&mut hostnames, h));
            if hostnames.is_empty() {
                return None;
            }
        }
    }
    Some(hostnames)
}

/// The more specific of two intersecting hostnames.
fn intersect(listener: &str, route: &str) -> Option<String> {
    if listener == route || wildcard_covers(listener, route) {
        Some(route.to_string())
    } else if wildcard_covers(route, listener) {
        Some(listener.to_string())
    } else {
        None
    }
}

/// Whether `*.suffix` covers `host` (which may itself be a narrower wildcard). `*.example.com` does
/// not cover `example.com`.
fn wildcard_covers(wildcard: &str, host: &str) -> bool {
    wildcard.strip_prefix("*.").is_some_and(|suffix| {
        host.len() > suffix.len() + 1
            && host.ends_with(suffix)
            && host.as_bytes().get(host.len() - suffix.len() - 1) == Some(&b'.')
    })
}

fn push_unique(hostnames: &mut Vec<String>, hostname: String) {
    if !hostnames.contains(&hostname) {
        hostnames.push(hostname);
    }
}

#[cfg(test)]
mod tests {
    use super::effective_hostnames;

    fn hosts(listener: Option<&str>, route: &[&str]) -> Option<Vec<String>> {
        let route: Vec<String> = route.iter().map(|h| h.to_string()).collect();
        effective_hostnames(listener, &route)
    }

    #[test]
    fn a_route_without_hostnames_takes_the_listener_hostname() {
        assert_eq!(
            hosts(Some("a.example.com"), &[]),
            Some(vec!["a.example.com".to_string()])
        );
        assert_eq!(hosts(None, &[]), Some(vec![]));
    }

    #[test]
    fn only_intersecting_hostnames_are_kept_and_the_more_specific_one_wins() {
        assert_eq!(
            hosts(
                Some("*.example.com"),
                &["a.example.com", "other.org", "example.com"]
            ),
            Some(vec!["a.example.com".to_string()])
        );
        assert_eq!(
            hosts(Some("a.example.com"), &["*.example.com"]),
            Some(vec!["a.example.com".to_string()])
        );
        assert_eq!(
            hosts(Some("*.example.com"), &["*.a.example.com"]),
            Some(vec!["*.a.example.com".to_string()])
        );
        assert_eq!(hosts(Some("a.example.com"), &["b.example.com"]), None);
        assert_eq!(hosts(Some("*.example.com"), &["xexample.com"]), None);
    }

    #[test]
    fn hostnames_are_lowercased_and_deduplicated() {
        assert_eq!(
            hosts(None, &["A.example.com", "a.example.com"]),
            Some(vec!["a.example.com".to_string()])
        );
    }
}
