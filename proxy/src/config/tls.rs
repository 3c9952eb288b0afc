//! Validation of the TLS keys: listeners' `tls` and `redirect_https`, the `tls:` section (whose
//! certificate directory is loaded here, so `check` and `run` report certificate problems the
//! same way), and `sites[].origin_tls`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::raw::{RawListener, RawOriginTls, RawTls};
use super::validate::Validator;
use super::{ConfigErrorKind, ListenerConfig, OriginConfig, OriginTlsConfig, TlsConfig};

/// A validated listener with its raw `tls` and `redirect_https` flags (kept for their lines).
pub(super) type CheckedListener = (ListenerConfig, Option<Spanned<bool>>, Option<Spanned<bool>>);

/// Default of `tls.handshake_timeout`.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Validator<'_> {
    /// The listeners, and whether their `tls`/`redirect_https` flags agree with the `tls:`
    /// section.
    pub(super) fn listeners(
        &mut self,
        raw: Vec<Spanned<RawListener>>,
        tls: Option<&Spanned<RawTls>>,
        seen_addrs: &mut HashMap<SocketAddr, String>,
    ) -> Vec<ListenerConfig> {
        let mut checked = Vec::new();
        for (i, l) in raw.into_iter().enumerate() {
            let RawListener {
                address,
                tls,
                redirect_https,
            } = l.value;
            let key = format!("listeners[{i}].address");
            if let Some(address) = self.address(&address, &key, seen_addrs) {
                let listener = ListenerConfig {
                    address,
                    tls: tls.as_ref().is_some_and(|t| t.value),
                    redirect_https: redirect_https.as_ref().is_some_and(|r| r.value),
                };
                checked.push((listener, tls, redirect_https));
            }
        }
        self.tls_agreement(&checked, tls);
        checked.into_iter().map(|(l, _, _)| l).collect()
    }

    /// The `tls:` section. The certificate directory must load as the proxy would load it:
    /// each problem becomes its own error naming its file.
    pub(super) fn tls_section(&mut self, raw: &Spanned<RawTls>) -> Option<TlsConfig> {
        let RawTls {
            certs_dir,
            default_cert,
            handshake_timeout,
        } = &raw.value;
        let before = self.errors.len();
        let handshake_timeout = match handshake_timeout {
            Some(t) => {
                let d = self.duration(Some(t.clone()), "tls.handshake_timeout", HANDSHAKE_TIMEOUT);
                if d.is_zero() {
                    self.err(t, "tls.handshake_timeout", ConfigErrorKind::Zero);
                }
                d
            }
            None => HANDSHAKE_TIMEOUT,
        };
        let default_cert = match default_cert {
            Some(d) if d.value.trim().is_empty() => {
                self.err(d, "tls.default_cert", ConfigErrorKind::Empty);
                None
            }
            Some(d) => Some(d.value.clone()),
            None => None,
        };
        if certs_dir.value.is_empty() {
            self.err(certs_dir, "tls.certs_dir", ConfigErrorKind::Empty);
            return None;
        }
        let dir = self.base.join(&certs_dir.value);
        if let Err(errors) = portcullis_certs::check_dir(&dir, default_cert.as_deref()) {
            for e in errors.errors {
                let kind = ConfigErrorKind::Certs {
                    path: e.path,
                    source: e.kind,
                };
                self.err(certs_dir, "tls.certs_dir", kind);
            }
        }
        (self.errors.len() == before).then_some(TlsConfig {
            certs_dir: dir,
            default_cert,
            handshake_timeout,
        })
    }

    /// Checks that listeners and the `tls:` section agree. `listeners` holds the raw flags
    /// (with their positions) next to the validated listener.
    fn tls_agreement(&mut self, listeners: &[CheckedListener], tls: Option<&Spanned<RawTls>>) {
        let any_tls = listeners.iter().any(|(l, _, _)| l.tls);
        for (i, (l, tls_flag, redirect)) in listeners.iter().enumerate() {
            if let (Some(flag), true, None) = (tls_flag, l.tls, tls) {
                self.err(
                    flag,
                    format!("listeners[{i}].tls"),
                    ConfigErrorKind::TlsWithoutSection,
                );
            }
            let Some(redirect) = redirect.as_ref().filter(|r| r.value) else {
                continue;
            };
            let key = format!("listeners[{i}].redirect_https");
            if l.tls {
                self.err(redirect, key, ConfigErrorKind::RedirectOnTls);
            } else if !any_tls {
                self.err(redirect, key, ConfigErrorKind::RedirectWithoutTls);
            }
        }
        if let (Some(section), false) = (tls, any_tls) {
            self.err(section, "tls", ConfigErrorKind::TlsSectionUnused);
        }
    }

    /// `sites[i].origin_tls`. The CA file must load exactly as the origin connector will load it.
    pub(super) fn origin_tls(
        &mut self,
        i: usize,
        raw: &Spanned<RawOriginTls>,
        origins: &[OriginConfig],
    ) -> Option<OriginTlsConfig> {
        let RawOriginTls {
            ca_file,
            server_name,
            insecure_skip_verify,
        } = &raw.value;
        let before = self.errors.len();
        if !origins.iter().any(|o| o.tls) {
            let key = format!("sites[{i}].origin_tls");
            self.err(raw, key, ConfigErrorKind::OriginTlsUnused);
        }
        let insecure = insecure_skip_verify.as_ref().is_some_and(|v| v.value);
        let ca_path = ca_file.as_ref().map(|f| self.base.join(&f.value));
        if let (Some(f), Some(path)) = (ca_file, &ca_path) {
            let key = format!("sites[{i}].origin_tls.ca_file");
            if insecure {
                self.err(f, key, ConfigErrorKind::InsecureWithCa);
            } else if let Err(e) = portcullis_certs::client_config(Some(path), false, &[]) {
                self.err(f, key, ConfigErrorKind::OriginTls(e));
            }
        }
        let server_name = server_name.as_ref().and_then(|n| {
            match rustls::pki_types::ServerName::try_from(n.value.as_str()) {
                Ok(_) => Some(n.value.clone()),
                Err(_) => {
                    let kind = ConfigErrorKind::BadServerName {
                        value: n.value.clone(),
                    };
                    self.err(n, format!("sites[{i}].origin_tls.server_name"), kind);
                    None
                }
            }
        });
        (self.errors.len() == before).then_some(OriginTlsConfig {
            ca_file: ca_path,
            server_name,
            insecure_skip_verify: insecure,
        })
    }
}
