//! Which shared tokens a flow's templates read, and where they live.
//!
//! Templates are compiled flow by flow, before the scenario file's other
//! flows are known; the references are resolved to their token-manager's
//! store once every flow is read (see `config`), so a typo in
//! `{{token.NAME}}` is a load-time error and a VU's lookup is by index.

use super::store::{TokenCache, TokenStore};
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use volley_window::Tags;

/// A flow's token references.
#[derive(Debug, Default)]
pub struct TokenRefs {
    /// As written: `""` for `{{token}}`, `NAME` for `{{token.NAME}}`.
    refs: Vec<String>,
    stores: OnceLock<Vec<Arc<TokenStore>>>,
}

impl TokenRefs {
    /// The distinct references among `refs`.
    pub fn new<'a>(refs: impl IntoIterator<Item = &'a str>) -> TokenRefs {
        let mut refs: Vec<String> = refs.into_iter().map(str::to_string).collect();
        refs.sort_unstable();
        refs.dedup();
        TokenRefs { refs, stores: OnceLock::new() }
    }

    /// True when no template reads a token.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Resolves every reference against the token-manager flows `managers`;
    /// `own` names the flow itself when it is a token manager (its plain
    /// `{{token}}` is its own token). Returns one message per problem.
    pub fn link(&self, managers: &BTreeMap<String, Arc<TokenStore>>, own: Option<&str>) -> Vec<String> {
        let mut errors = Vec::new();
        let mut stores = Vec::new();
        for r in &self.refs {
            match resolve(r, managers, own) {
                Ok(s) => stores.push(s),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            let _ = self.stores.set(stores);
        }
        errors
    }

    /// Fresh per-VU copies, one per reference (none before linking).
    pub fn caches(&self, tags: &Tags, metrics: &Metrics) -> Vec<TokenCache> {
        let Some(stores) = self.stores.get() else { return Vec::new() };
        self.refs.iter().zip(stores).map(|(r, s)| TokenCache::new(r, s.clone(), tags, metrics)).collect()
    }

    /// Names of the token-manager flows read, once linked.
    pub fn flows(&self) -> Vec<&str> {
        self.stores.get().map(|s| s.iter().map(|s| s.name()).collect()).unwrap_or_default()
    }
}

fn resolve(
    reference: &str,
    managers: &BTreeMap<String, Arc<TokenStore>>,
    own: Option<&str>,
) -> Result<Arc<TokenStore>, String> {
    let names = || managers.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
    if reference.is_empty() {
        if let Some(s) = own.and_then(|o| managers.get(o)) {
            return Ok(s.clone());
        }
        return match managers.len() {
            0 => {
                Err("uses {{token}}, but no flow has type token-manager (define one to fetch and share the token)"
                    .into())
            }
            1 => Ok(managers.values().next().expect("one").clone()),
            _ => Err(format!(
                "uses {{{{token}}}}, but there are several token-manager flows ({}): name one, as {{{{token.NAME}}}}",
                names()
            )),
        };
    }
    managers.get(reference).cloned().ok_or_else(|| {
        if managers.is_empty() {
            format!("uses {{{{token.{reference}}}}}, but no flow has type token-manager")
        } else {
            format!(
                "uses {{{{token.{reference}}}}}, but \"{reference}\" is not a token-manager flow (token managers: {})",
                names()
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn managers(names: &[&str]) -> BTreeMap<String, Arc<TokenStore>> {
        names.iter().map(|n| (n.to_string(), Arc::new(TokenStore::new(n, Duration::from_secs(1))))).collect()
    }

    #[test]
    fn plain_token_means_the_only_manager_or_the_flow_itself() {
        let r = TokenRefs::new(["", "", "admin"]);
        assert!(r.link(&managers(&["admin"]), None).is_empty());
        assert_eq!(r.flows(), vec!["admin", "admin"]);
        let r = TokenRefs::new([""]);
        assert!(r.link(&managers(&["a", "b"]), Some("b")).is_empty());
        assert_eq!(r.flows(), vec!["b"]);
    }

    #[test]
    fn unresolvable_references_say_why() {
        let none = TokenRefs::new([""]).link(&managers(&[]), None);
        assert!(none[0].contains("no flow has type token-manager"), "{none:?}");
        let several = TokenRefs::new([""]).link(&managers(&["a", "b"]), None);
        assert!(several[0].contains("several token-manager flows (a, b)"), "{several:?}");
        let typo = TokenRefs::new(["auht"]).link(&managers(&["auth"]), None);
        assert!(typo[0].contains("\"auht\" is not a token-manager flow (token managers: auth)"), "{typo:?}");
    }
}
