//! Payment records: the small records the node keeps beside its monitors.
//!
//! A payment we send is recorded (its intent) before its first HTLC leaves,
//! and again when it resolves, so that the node can list payments and, after
//! a restart, knows which payments are still in flight. Everything about
//! its HTLCs lives in the monitors. Records are written under the
//! `payments` namespace, key = the payment id in hex, value = the versioned
//! TLV encoding below.

use bitcoin::hex::DisplayHex;
use bitcoin::secp256k1::PublicKey;
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use super::events::PaymentId;
use crate::ser::{from_versioned, versioned, Decode, DecodeError, Encode, Reader, Records, TlvWriter};

/// The store namespace of payment records.
pub const PAYMENTS_NAMESPACE: &str = "payments";

/// The encoding version of [`PaymentRecord`].
pub const RECORD_VERSION: u8 = 1;

/// Where a payment we send stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentStatus {
    /// HTLCs may be in flight.
    Pending,
    /// Paid: the preimage is the proof.
    Succeeded {
        /// The preimage.
        preimage: PaymentPreimage,
        /// The routing fees paid.
        fee_paid_msat: u64,
    },
    /// Failed for good.
    Failed {
        /// Why, in words.
        reason: String,
    },
}

/// A payment we send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// Its id (unique per payment; a retry of the same invoice is refused).
    pub payment_id: PaymentId,
    /// Its hash.
    pub payment_hash: PaymentHash,
    /// What the recipient gets.
    pub amount_msat: u64,
    /// The recipient.
    pub payee: PublicKey,
    /// The recipient's payment secret (BOLT 11), if any.
    pub payment_secret: Option<[u8; 32]>,
    /// For keysend: the preimage we chose.
    pub keysend_preimage: Option<PaymentPreimage>,
    /// The final CLTV delta the recipient asked for.
    pub final_cltv_expiry_delta: u32,
    /// The invoice, as given (BOLT 11 string), for route hints and listing.
    pub invoice: Option<String>,
    /// When it was started (seconds since the epoch).
    pub created_at_secs: u64,
    /// Where it stands.
    pub status: PaymentStatus,
    /// Whether the user has handled its outcome (`PaymentSent` or
    /// `PaymentFailed`): then it is never reported again.
    pub seen: bool,
}

/// A record to write, then report with
/// [`super::ChannelManager::record_persisted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// The payment.
    pub payment_id: PaymentId,
    /// The namespace ([`PAYMENTS_NAMESPACE`]).
    pub namespace: &'static str,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

impl PaymentRecord {
    /// The store key of this record.
    pub fn key(&self) -> String {
        self.payment_id.0.to_lower_hex_string()
    }

    /// The write that stores this record.
    pub fn write(&self) -> RecordWrite {
        RecordWrite {
            payment_id: self.payment_id,
            namespace: PAYMENTS_NAMESPACE,
            key: self.key(),
            value: versioned(RECORD_VERSION, self),
        }
    }

    /// Reads a stored record.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for bytes that are not a record of a known version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        from_versioned(bytes, RECORD_VERSION)
    }
}

// PaymentStatus: 0 tag (0 pending, 1 succeeded, 2 failed), 2 preimage,
// 4 fee paid, 6 reason.
impl Encode for PaymentStatus {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut w = TlvWriter::new();
        match self {
            Self::Pending => w.field(0, &0u8),
            Self::Succeeded { preimage, fee_paid_msat } => {
                w.field(0, &1u8).field(2, preimage).field(4, fee_paid_msat)
            }
            Self::Failed { reason } => w.field(0, &2u8).field(6, reason),
        };
        w.finish(out);
    }
}

impl Decode for PaymentStatus {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let status = match rec.req::<u8>(0)? {
            0 => Self::Pending,
            1 => Self::Succeeded { preimage: rec.req(2)?, fee_paid_msat: rec.req(4)? },
            2 => Self::Failed { reason: rec.req(6)? },
            _ => return Err(DecodeError::InvalidValue("payment status")),
        };
        rec.finish()?;
        Ok(status)
    }
}

// PaymentRecord: 0 payment id, 2 hash, 4 amount, 6 payee, 7 secret,
// 9 keysend preimage, 10 final cltv delta, 11 invoice, 12 created at,
// 14 status, 15 seen (absent: not seen).
impl Encode for PaymentRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        TlvWriter::new()
            .field(0, &self.payment_id.0)
            .field(2, &self.payment_hash)
            .field(4, &self.amount_msat)
            .field(6, &self.payee)
            .opt(7, &self.payment_secret)
            .opt(9, &self.keysend_preimage)
            .field(10, &self.final_cltv_expiry_delta)
            .opt(11, &self.invoice)
            .field(12, &self.created_at_secs)
            .field(14, &self.status)
            .opt(15, &self.seen.then_some(true))
            .finish(out);
    }
}

impl Decode for PaymentRecord {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut rec = Records::parse(r)?;
        let record = Self {
            payment_id: PaymentId(rec.req(0)?),
            payment_hash: rec.req(2)?,
            amount_msat: rec.req(4)?,
            payee: rec.req(6)?,
            payment_secret: rec.opt(7)?,
            keysend_preimage: rec.opt(9)?,
            final_cltv_expiry_delta: rec.req(10)?,
            invoice: rec.opt(11)?,
            created_at_secs: rec.req(12)?,
            status: rec.req(14)?,
            seen: rec.opt::<bool>(15)?.unwrap_or(false),
        };
        rec.finish()?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    fn record(status: PaymentStatus) -> PaymentRecord {
        let secp = Secp256k1::new();
        PaymentRecord {
            payment_id: PaymentId([1; 32]),
            payment_hash: PaymentHash([2; 32]),
            amount_msat: 42_000,
            payee: PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[3; 32]).expect("key")),
            payment_secret: Some([4; 32]),
            keysend_preimage: None,
            final_cltv_expiry_delta: 48,
            invoice: Some("lnbcrt1...".into()),
            created_at_secs: 1_700_000_000,
            status,
            seen: false,
        }
    }

    #[test]
    fn every_status_round_trips_and_bad_bytes_are_errors() {
        for status in [
            PaymentStatus::Pending,
            PaymentStatus::Succeeded { preimage: PaymentPreimage([5; 32]), fee_paid_msat: 7 },
            PaymentStatus::Failed { reason: "no route".into() },
        ] {
            let mut r = record(status);
            r.seen = r.status != PaymentStatus::Pending;
            let w = r.write();
            assert_eq!((w.namespace, w.key.as_str()), (PAYMENTS_NAMESPACE, r.key().as_str()));
            assert_eq!(PaymentRecord::from_bytes(&w.value), Ok(r.clone()));
            for cut in 0..w.value.len() {
                assert!(
                    PaymentRecord::from_bytes(&w.value[..cut]).is_err(),
                    "a record cut at {cut} is refused"
                );
            }
            let mut newer = w.value.clone();
            newer[0] = RECORD_VERSION + 1;
            assert!(PaymentRecord::from_bytes(&newer).is_err(), "a newer version is refused");
        }
    }
}
