//! A change note: which rows a write transaction changed, so that other servers sharing
//! the PostgreSQL database can re-read them (`changes.rs` sends and applies notes).
//!
//! What it owns: the note's shape and its degradation to coarser refreshes when it would
//! not fit a notification. What it must never do: carry values (receivers re-read the
//! committed rows, so a note can never carry a value that was rolled back or overtaken).

use allot_store::CHANGE_PAYLOAD_MAX;
use serde::{Deserialize, Serialize};

/// What changed, as small as possible; bigger sets degrade to coarser refreshes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct ChangeNote {
    /// The writing server's instance id (a server ignores its own notes).
    pub src: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positions: Vec<(String, String)>,
    /// Every position of these nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_positions: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_positions: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub policies: bool,
    /// Carriers or node calendars changed (small: all of them are re-read).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promise_data: bool,
}

impl ChangeNote {
    /// The JSON payload, degraded until it fits a notification.
    pub(crate) fn payload(mut self) -> String {
        let mut text = serde_json::to_string(&self).unwrap_or_default();
        if text.len() > CHANGE_PAYLOAD_MAX && !self.positions.is_empty() {
            let mut nodes: Vec<String> = self.positions.drain(..).map(|(n, _)| n).collect();
            nodes.sort();
            nodes.dedup();
            self.node_positions.extend(nodes);
            text = serde_json::to_string(&self).unwrap_or_default();
        }
        if text.len() > CHANGE_PAYLOAD_MAX {
            self.node_positions.clear();
            self.all_positions = true;
            self.nodes.clear();
            self.items.clear();
            text = serde_json::to_string(&ChangeNote { src: self.src.clone(), all_positions: true, ..self.clone() })
                .unwrap_or_default();
            if text.len() > CHANGE_PAYLOAD_MAX {
                text = serde_json::to_string(&ChangeNote {
                    src: self.src,
                    all_positions: true,
                    policies: true,
                    nodes: vec!["*".to_owned()],
                    items: vec!["*".to_owned()],
                    ..Default::default()
                })
                .unwrap_or_default();
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_notes_degrade_to_coarser_refreshes_that_fit() {
        let small = ChangeNote { src: "a".into(), positions: vec![("N1".into(), "S1".into())], ..Default::default() };
        let back: ChangeNote = serde_json::from_str(&small.clone().payload()).unwrap();
        assert_eq!(back, small);

        let many: Vec<(String, String)> = (0..2000).map(|i| (format!("N{}", i % 7), format!("SKU-{i:05}"))).collect();
        let note = ChangeNote { src: "a".into(), positions: many, ..Default::default() };
        let text = note.payload();
        assert!(text.len() <= CHANGE_PAYLOAD_MAX);
        let back: ChangeNote = serde_json::from_str(&text).unwrap();
        assert!(back.positions.is_empty());
        assert_eq!(back.node_positions.len(), 7);

        let huge: Vec<(String, String)> = (0..5000).map(|i| (format!("NODE-{i:05}"), "S".into())).collect();
        let back: ChangeNote =
            serde_json::from_str(&ChangeNote { src: "a".into(), positions: huge, ..Default::default() }.payload())
                .unwrap();
        assert!(back.all_positions && back.node_positions.is_empty());
    }
}
