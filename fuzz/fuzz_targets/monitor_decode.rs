//! Decoding anything a monitor store can hold never panics, and whatever
//! decodes encodes back to bytes that decode to the same value.
//!
//! The first byte picks the decoder: a monitor, a delta, a monitor update,
//! a stored event, or a whole store given to `ChainMonitor::load` (entries
//! as `key \0 value \0`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_core::chain_monitor::{ChainMonitor, ChainMonitorConfig, Delta};
use vigil_core::channel::MonitorUpdate;
use vigil_core::monitor::{ChannelMonitor, StoredEvent};
use vigil_core::ser::{Decode, Encode};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 5 {
        0 => {
            if let Ok(m) = ChannelMonitor::deserialize(rest) {
                let again = ChannelMonitor::deserialize(&m.serialize()).expect("re-encoded monitors decode");
                assert_eq!(again.serialize(), m.serialize());
            }
        }
        1 => {
            if let Ok(d) = Delta::deserialize(rest) {
                assert_eq!(Delta::deserialize(&d.serialize()).as_ref(), Ok(&d));
            }
        }
        2 => {
            if let Ok(u) = MonitorUpdate::from_bytes(rest) {
                assert_eq!(MonitorUpdate::from_bytes(&u.to_bytes()).as_ref(), Ok(&u));
            }
        }
        3 => {
            if let Ok(e) = StoredEvent::from_bytes(rest) {
                assert_eq!(StoredEvent::from_bytes(&e.to_bytes()).as_ref(), Ok(&e));
            }
        }
        _ => {
            let mut parts = rest.split(|b| *b == 0);
            let mut entries = Vec::new();
            while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                entries.push((String::from_utf8_lossy(k).into_owned(), v.to_vec()));
            }
            if let Ok((mut cm, _)) = ChainMonitor::load(ChainMonitorConfig::default(), entries) {
                while cm.poll_event().is_some() {}
                while cm.poll_persist().is_some() {}
            }
        }
    }
});
