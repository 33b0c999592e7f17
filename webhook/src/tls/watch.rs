//! A mounted certificate (cert-manager, a Secret volume): reloaded when its files change.
//!
//! Kubernetes updates a mounted Secret by swapping a symlink, which inotify reports unreliably
//! across platforms; comparing the bytes every few seconds is simple and certain, and a rotation
//! days before expiry does not need to land within milliseconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::CertResolver;

/// How often the files are read.
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Loads `dir/tls.crt` and `dir/tls.key` into `resolver` now and again whenever their content
/// changes, checking every 5 s. A pair that cannot be read or does not load is logged (once per
/// distinct problem) and the previous certificate kept. Runs forever; spawn it.
pub async fn watch_cert_dir(dir: PathBuf, resolver: Arc<CertResolver>) {
    watch_every(&dir, &resolver, POLL_INTERVAL).await;
}

async fn watch_every(dir: &Path, resolver: &CertResolver, interval: Duration) {
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    // The pair last tried, loaded or not: a bad pair is reported once, not every poll.
    let mut last: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut last_read_error: Option<String> = None;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let read = async {
            let cert = tokio::fs::read(&cert_path).await?;
            let key = tokio::fs::read(&key_path).await?;
            Ok::<_, std::io::Error>((cert, key))
        };
        let pair = match read.await {
            Ok(pair) => pair,
            Err(e) => {
                let error = e.to_string();
                if last_read_error.as_ref() != Some(&error) {
                    tracing::warn!(dir = %dir.display(), error = %error, "failed to read the webhook certificate; keeping the current one");
                    last_read_error = Some(error);
                }
                continue;
            }
        };
        last_read_error = None;
        if last.as_ref() == Some(&pair) {
            continue;
        }
        match resolver.set_pem(&pair.0, &pair.1) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "loaded the webhook certificate");
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "failed to load the webhook certificate; keeping the current one");
            }
        }
        last = Some(pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_tls::testing::self_signed;

    fn leaf_der(resolver: &CertResolver) -> Option<Vec<u8>> {
        resolver.current().map(|c| c.cert[0].to_vec())
    }

    async fn wait_for(mut done: impl FnMut() -> bool) {
        for _ in 0..200 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached in 2s");
    }

    #[tokio::test]
    async fn a_changed_pair_is_loaded_and_a_broken_one_keeps_the_last_good_one() {
        let dir = std::env::temp_dir().join(format!("agw-webhook-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_a, key_a) = self_signed("a.example");
        std::fs::write(dir.join("tls.crt"), &cert_a).unwrap();
        std::fs::write(dir.join("tls.key"), &key_a).unwrap();
        let resolver = CertResolver::new();
        let watcher = {
            let (dir, resolver) = (dir.clone(), resolver.clone());
            tokio::spawn(
                async move { watch_every(&dir, &resolver, Duration::from_millis(20)).await },
            )
        };
        wait_for(|| resolver.is_loaded()).await;
        let first = leaf_der(&resolver);

        let (cert_b, key_b) = self_signed("b.example");
        std::fs::write(dir.join("tls.crt"), &cert_b).unwrap();
        std::fs::write(dir.join("tls.key"), &key_b).unwrap();
        wait_for(|| leaf_der(&resolver) != first).await;
        let second = leaf_der(&resolver);

        // A certificate without its key: refused, and `b` keeps serving.
        std::fs::write(dir.join("tls.crt"), &cert_a).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(leaf_der(&resolver), second);

        watcher.abort();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
