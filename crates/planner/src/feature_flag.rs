//! The `feature_copy_offload` switch, read where Forklift keeps it and followed live: nothing the
//! planner does happens while it is off, and flipping it takes effect without a restart.
//!
//! Sources, first one that says something wins:
//! 1. `spec.feature_copy_offload` of the `ForkliftController` CR (Forklift's operator), as the
//!    seed's `oc patch forkliftcontrollers … {"spec": {"feature_copy_offload": "true"}}` sets it;
//! 2. key `feature_copy_offload` of the ConfigMap `copy-offload-features`, for clusters that run
//!    copy-offload without Forklift's operator.
//!
//! Neither present means off (the seed's default; Forklift's operator turned it on by default
//! later, which this deliberately does not follow).

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::watch;

/// The setting's name, in both sources.
pub const FEATURE_COPY_OFFLOAD: &str = "feature_copy_offload";
/// The ConfigMap consulted when no ForkliftController sets the flag.
pub const FEATURES_CONFIG_MAP: &str = "copy-offload-features";

/// Forklift's operator CR kind.
pub fn forklift_controller_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("forklift.konveyor.io", "v1beta1", "ForkliftController"),
        "forkliftcontrollers",
    )
}

/// Reads `true`/`false` as Forklift's operator does: a boolean or its text, any case.
pub fn parse_flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(on) => Some(*on),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The flag's current value and its changes.
#[derive(Clone, Debug)]
pub struct FeatureFlag {
    /// `None` until both sources have been read once.
    state: watch::Receiver<Option<bool>>,
}

impl FeatureFlag {
    /// Whether copy offload is on now (off until the sources have been read).
    pub fn enabled(&self) -> bool {
        *self.state.borrow() == Some(true)
    }

    /// Waits until both sources have been read once, so that "off" is a reading, not a guess.
    pub async fn synced(&self) {
        let mut state = self.state.clone();
        // An error means the follower stopped; `enabled` then stays as it was.
        let _ = state.wait_for(Option::is_some).await;
    }

    /// A tick each time the flag changes (for re-evaluating every object).
    pub fn changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(self.state.clone(), |mut state| async move {
            state.changed().await.ok().map(|()| ((), state))
        })
    }

    /// A flag fixed to `on` (for rendering a plan as if the flag were on).
    pub fn fixed(on: bool) -> Self {
        let (_sender, state) = watch::channel(Some(on));
        Self { state }
    }

    /// Follows both sources in `namespace` until the returned task is aborted.
    pub fn follow(
        client: Client,
        namespace: &str,
        controller_name: &str,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, state) = watch::channel(None);
        let operator: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &forklift_controller_resource());
        let config_maps: Api<ConfigMap> = Api::namespaced(client, namespace);
        let operator_events = watcher::watcher(
            operator,
            watcher::Config::default().fields(&format!("metadata.name={controller_name}")),
        )
        .default_backoff()
        .map(|event| (Source::Operator, change(event, operator_value)));
        let config_map_events = watcher::watcher(
            config_maps,
            watcher::Config::default().fields(&format!("metadata.name={FEATURES_CONFIG_MAP}")),
        )
        .default_backoff()
        .map(|event| (Source::ConfigMap, change(event, config_map_value)));
        let events = futures::stream::select(operator_events, config_map_events);
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            let mut sources = Sources::default();
            while let Some((source, change)) = events.next().await {
                sources.apply(source, change);
                let Some(on) = sources.enabled() else {
                    continue;
                };
                if sender.send_if_modified(|current| current.replace(on) != Some(on)) {
                    tracing::info!(enabled = on, "{FEATURE_COPY_OFFLOAD} is now read as {on}");
                }
            }
        });
        (Self { state }, task)
    }
}

#[derive(Clone, Copy, Debug)]
enum Source {
    Operator,
    ConfigMap,
}

/// What one watch event means for its source.
#[derive(Debug, PartialEq)]
enum Change {
    /// The object now says this (`None`: gone, or silent about the flag).
    Set(Option<bool>),
    /// A (re)list begins: collect until [`Change::ListDone`] so the flag does not flicker.
    ListStart,
    /// An object of the (re)list.
    Listed(Option<bool>),
    /// The (re)list is complete.
    ListDone,
    /// The source cannot be read (its CRD is not installed, or the API server refused).
    Unavailable,
}

fn change<K>(event: Result<Event<K>, watcher::Error>, value_of: fn(&K) -> Option<bool>) -> Change {
    match event {
        Ok(Event::Apply(object)) => Change::Set(value_of(&object)),
        Ok(Event::Delete(_)) => Change::Set(None),
        Ok(Event::Init) => Change::ListStart,
        Ok(Event::InitApply(object)) => Change::Listed(value_of(&object)),
        Ok(Event::InitDone) => Change::ListDone,
        Err(error) => {
            // The ForkliftController CRD is absent where Forklift's operator is not installed:
            // that source then simply says nothing.
            tracing::debug!(%error, "a feature flag source is unavailable");
            Change::Unavailable
        }
    }
}

/// One source: its last complete reading and a relist in progress.
#[derive(Default)]
struct SourceState {
    read: bool,
    value: Option<bool>,
    listing: Option<Option<bool>>,
}

impl SourceState {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Set(value) => {
                self.value = value;
                self.read = true;
            }
            Change::ListStart => self.listing = Some(None),
            Change::Listed(value) => self.listing = Some(value),
            Change::ListDone => {
                self.value = self.listing.take().flatten();
                self.read = true;
            }
            Change::Unavailable => {
                if !self.read {
                    self.value = None;
                    self.read = true;
                }
            }
        }
    }
}

#[derive(Default)]
struct Sources {
    operator: SourceState,
    config_map: SourceState,
}

impl Sources {
    fn apply(&mut self, source: Source, change: Change) {
        match source {
            Source::Operator => self.operator.apply(change),
            Source::ConfigMap => self.config_map.apply(change),
        }
    }

    /// `None` until both sources were read once.
    fn enabled(&self) -> Option<bool> {
        (self.operator.read && self.config_map.read).then(|| {
            self.operator
                .value
                .or(self.config_map.value)
                .unwrap_or(false)
        })
    }
}

fn operator_value(object: &DynamicObject) -> Option<bool> {
    object
        .data
        .get("spec")
        .and_then(|spec| spec.get(FEATURE_COPY_OFFLOAD))
        .and_then(parse_flag)
}

fn config_map_value(config_map: &ConfigMap) -> Option<bool> {
    config_map
        .data
        .as_ref()
        .and_then(|data| data.get(FEATURE_COPY_OFFLOAD))
        .and_then(|text| parse_flag(&Value::String(text.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_like_forklifts_operator() {
        assert_eq!(parse_flag(&json!("true")), Some(true));
        assert_eq!(parse_flag(&json!("True")), Some(true));
        assert_eq!(parse_flag(&json!(false)), Some(false));
        assert_eq!(parse_flag(&json!("yes please")), None);
    }

    #[test]
    fn the_operator_wins_silence_means_off_and_a_relist_does_not_flicker() {
        let mut sources = Sources::default();
        sources.apply(Source::ConfigMap, Change::ListStart);
        sources.apply(Source::ConfigMap, Change::Listed(Some(true)));
        sources.apply(Source::ConfigMap, Change::ListDone);
        assert_eq!(
            sources.enabled(),
            None,
            "the operator source was not read yet"
        );
        sources.apply(Source::Operator, Change::Unavailable);
        assert_eq!(sources.enabled(), Some(true));
        sources.apply(Source::Operator, Change::Set(Some(false)));
        assert_eq!(sources.enabled(), Some(false));
        sources.apply(Source::Operator, Change::Set(None));
        sources.apply(Source::ConfigMap, Change::ListStart);
        assert_eq!(
            sources.enabled(),
            Some(true),
            "a relist keeps the last reading"
        );
        sources.apply(Source::ConfigMap, Change::ListDone);
        assert_eq!(sources.enabled(), Some(false));
    }
}
