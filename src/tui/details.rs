//! Placeholder for the message details pane (decoded fields as a tree and a hex view), which
//! another change provides; this version only says the details are not available. Keeps the
//! agreed signatures so the Messages view can call it unchanged.

use crate::time::Ts;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::{Paragraph, Widget};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything needed to find one message again in its capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRef {
    pub capture: PathBuf,
    /// The flow's (originator, responder).
    pub uid_endpoints: (SocketAddr, SocketAddr),
    pub proto: u8,
    /// The message's sender.
    pub dir_from: SocketAddr,
    pub ts: Ts,
    pub protocol: &'static str,
    pub msg_type: String,
    pub index_in_flow: usize,
}

/// Decoded messages kept between frames.
#[derive(Debug, Default)]
pub struct DetailsCache {}

/// Draws the details of `msg` into `area`, highlighting field `selected_field`.
pub fn render_details(
    area: Rect,
    buf: &mut Buffer,
    msg: &MessageRef,
    selected_field: usize,
    cache: &mut DetailsCache,
) {
    let _ = (msg, selected_field, cache);
    Paragraph::new("details: not available").render(area, buf);
}

/// How many fields the details of `msg` have (for moving the selection).
pub fn field_count(msg: &MessageRef, cache: &mut DetailsCache) -> usize {
    let _ = (msg, cache);
    0
}
