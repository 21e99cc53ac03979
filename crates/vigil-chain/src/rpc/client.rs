//! [`BitcoindRpcChain`]: a [`ChainSource`] over any bitcoind's JSON-RPC,
//! including the embedded chain's server.
//!
//! Calls are blocking (rust-bitcoin's `jsonrpc` crate over its minimal HTTP
//! transport). With cookie authentication the cookie is read again after a
//! 401, so a restarted bitcoind with a new cookie is picked up.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{Amount, Block, BlockHash, FeeRate, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use jsonrpc::http::simple_http::{self, SimpleHttpTransport};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::cookie::read_cookie;
use crate::{
    BlockRef, BroadcastError, ChainSource, ChainSourceError, HeaderInfo, Rejection, TxInfo, UtxoInfo,
};

/// How to authenticate to bitcoind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// Read `user:password` from this cookie file.
    Cookie(PathBuf),
    /// A fixed user and password.
    UserPass {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

/// A [`ChainSource`] backed by bitcoind's JSON-RPC.
///
/// `transaction` finds confirmed transactions only when bitcoind runs with
/// `-txindex` (the embedded chain always indexes).
#[derive(Debug)]
pub struct BitcoindRpcChain {
    url: String,
    auth: RpcAuth,
    client: Mutex<jsonrpc::Client>,
}

fn build_client(url: &str, auth: &RpcAuth) -> Result<jsonrpc::Client, ChainSourceError> {
    let (user, password) = match auth {
        RpcAuth::Cookie(path) => {
            read_cookie(path).map_err(|e| ChainSourceError::Unavailable(e.to_string()))?
        }
        RpcAuth::UserPass { user, password } => (user.clone(), password.clone()),
    };
    let transport = SimpleHttpTransport::builder()
        .url(url)
        .map_err(|e| ChainSourceError::Unavailable(format!("bad RPC URL {url}: {e}")))?
        .timeout(Duration::from_secs(60))
        .auth(user, Some(password))
        .build();
    Ok(jsonrpc::Client::with_transport(transport))
}

#[derive(Deserialize)]
struct ChainInfo {
    blocks: u32,
    bestblockhash: BlockHash,
}

#[derive(Deserialize)]
struct VerboseHeader {
    height: u32,
}

#[derive(Deserialize)]
struct VerboseTx {
    hex: String,
    blockhash: Option<BlockHash>,
}

#[derive(Deserialize)]
struct ScriptPubKey {
    hex: String,
}

#[derive(Deserialize)]
struct TxOutReply {
    bestblock: BlockHash,
    confirmations: u32,
    value: f64,
    #[serde(rename = "scriptPubKey")]
    script_pubkey: ScriptPubKey,
    coinbase: bool,
}

#[derive(Deserialize)]
struct FeeReply {
    feerate: Option<f64>,
}

const NOT_FOUND: i32 = super::codes::INVALID_ADDRESS_OR_KEY;

fn protocol(what: &str, e: impl std::fmt::Display) -> ChainSourceError {
    ChainSourceError::Protocol(format!("{what}: {e}"))
}

/// BTC as a JSON number to satoshis, rounding away float noise.
fn btc_to_amount(btc: f64) -> Result<Amount, ChainSourceError> {
    if !(0.0..=21e6).contains(&btc) {
        return Err(protocol("amount", format!("{btc} BTC is out of range")));
    }
    Ok(Amount::from_sat((btc * 1e8).round() as u64))
}

impl BitcoindRpcChain {
    /// A client for the bitcoind at `url` (such as `http://127.0.0.1:18443`).
    /// No request is made until the first call.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError::Unavailable`] if the URL is malformed or the cookie
    /// cannot be read.
    pub fn new(url: &str, auth: RpcAuth) -> Result<Self, ChainSourceError> {
        let client = build_client(url, &auth)?;
        Ok(Self { url: url.to_owned(), auth, client: Mutex::new(client) })
    }

    /// Calls `method` with positional `params` and decodes the result.
    ///
    /// # Errors
    ///
    /// [`ChainSourceError::Rpc`] for an error reply,
    /// [`ChainSourceError::Unauthorized`] for HTTP 401,
    /// [`ChainSourceError::Unavailable`] for transport failures, and
    /// [`ChainSourceError::Protocol`] for a reply that does not decode.
    pub fn call<T: DeserializeOwned>(&self, method: &str, params: &[Value]) -> Result<T, ChainSourceError> {
        match self.call_once(method, params) {
            Err(ChainSourceError::Unauthorized) if matches!(self.auth, RpcAuth::Cookie(_)) => {
                // bitcoind writes a new cookie at every start.
                let fresh = build_client(&self.url, &self.auth)?;
                *self.client.lock().expect("RPC client lock poisoned: an earlier call panicked") = fresh;
                self.call_once(method, params)
            }
            other => other,
        }
    }

    fn call_once<T: DeserializeOwned>(&self, method: &str, params: &[Value]) -> Result<T, ChainSourceError> {
        let raw = serde_json::value::to_raw_value(params).map_err(|e| protocol("params", e))?;
        let client = self.client.lock().expect("RPC client lock poisoned: an earlier call panicked");
        let result = client.call::<T>(method, Some(&raw));
        drop(client);
        result.map_err(|e| match e {
            jsonrpc::Error::Rpc(e) => ChainSourceError::Rpc { code: e.code, message: e.message },
            jsonrpc::Error::Transport(e) => match e.downcast_ref::<simple_http::Error>() {
                Some(simple_http::Error::HttpErrorCode(401)) => ChainSourceError::Unauthorized,
                _ => ChainSourceError::Unavailable(format!("{}: {e}", self.url)),
            },
            other => protocol(method, other),
        })
    }

    /// Like [`BitcoindRpcChain::call`], mapping a "not found" error (-5) to
    /// `None`.
    fn call_optional<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &[Value],
    ) -> Result<Option<T>, ChainSourceError> {
        match self.call(method, params) {
            Ok(v) => Ok(Some(v)),
            Err(ChainSourceError::Rpc { code: NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn height_of(&self, hash: &BlockHash) -> Result<Option<u32>, ChainSourceError> {
        Ok(self
            .call_optional::<VerboseHeader>("getblockheader", &[json!(hash.to_string()), json!(true)])?
            .map(|h| h.height))
    }

    fn decode<T: bitcoin::consensus::Decodable>(what: &str, hex: &str) -> Result<T, ChainSourceError> {
        deserialize_hex(hex).map_err(|e| protocol(what, e))
    }
}

impl ChainSource for BitcoindRpcChain {
    fn tip(&self) -> Result<BlockRef, ChainSourceError> {
        let info: ChainInfo = self.call("getblockchaininfo", &[])?;
        Ok(BlockRef { height: info.blocks, hash: info.bestblockhash })
    }

    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, ChainSourceError> {
        match self.call::<String>("getblockhash", &[json!(height)]) {
            Ok(hex) => BlockHash::from_str(&hex).map(Some).map_err(|e| protocol("getblockhash", e)),
            // "Block height out of range"
            Err(ChainSourceError::Rpc { code: -8, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, ChainSourceError> {
        let Some(height) = self.height_of(hash)? else { return Ok(None) };
        let hex: String = self.call("getblockheader", &[json!(hash.to_string()), json!(false)])?;
        let header: bitcoin::block::Header = Self::decode("getblockheader", &hex)?;
        if header.block_hash() != *hash {
            return Err(protocol("getblockheader", format!("asked for {hash}, got {}", header.block_hash())));
        }
        Ok(Some(HeaderInfo { header, height }))
    }

    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainSourceError> {
        let Some(hex) = self.call_optional::<String>("getblock", &[json!(hash.to_string()), json!(0)])?
        else {
            return Ok(None);
        };
        let block: Block = Self::decode("getblock", &hex)?;
        if block.block_hash() != *hash || !block.check_merkle_root() {
            return Err(protocol("getblock", format!("the block sent for {hash} does not match it")));
        }
        Ok(Some(block))
    }

    fn mempool(&self) -> Result<Vec<Transaction>, ChainSourceError> {
        let txids: Vec<Txid> = self.call("getrawmempool", &[])?;
        let mut txs = Vec::with_capacity(txids.len());
        for txid in txids {
            // A transaction can leave the mempool between the two calls.
            if let Some(hex) =
                self.call_optional::<String>("getrawtransaction", &[json!(txid.to_string())])?
            {
                txs.push(Self::decode("getrawtransaction", &hex)?);
            }
        }
        Ok(txs)
    }

    fn broadcast(&self, tx: &Transaction) -> Result<Txid, BroadcastError> {
        match self.call::<Txid>("sendrawtransaction", &[json!(serialize_hex(tx))]) {
            Ok(txid) => Ok(txid),
            Err(ChainSourceError::Rpc { code, message }) if matches!(code, -25..=-22) || code == -27 => {
                Err(BroadcastError::Rejected(Rejection { code, reason: message, detail: None }))
            }
            Err(e) => Err(BroadcastError::Source(e)),
        }
    }

    fn fee_rate(&self, target_blocks: u16) -> Result<FeeRate, ChainSourceError> {
        let reply: FeeReply = self.call("estimatesmartfee", &[json!(target_blocks.clamp(1, 1008))])?;
        let btc_per_kvb = reply.feerate.ok_or(ChainSourceError::NoFeeEstimate)?;
        let sat_per_kvb = btc_to_amount(btc_per_kvb)?.to_sat();
        Ok(FeeRate::from_sat_per_kwu(sat_per_kvb / 4))
    }

    fn transaction(&self, txid: &Txid) -> Result<Option<TxInfo>, ChainSourceError> {
        let Some(reply) =
            self.call_optional::<VerboseTx>("getrawtransaction", &[json!(txid.to_string()), json!(true)])?
        else {
            return Ok(None);
        };
        let tx: Transaction = Self::decode("getrawtransaction", &reply.hex)?;
        let block = match reply.blockhash {
            Some(hash) => self.height_of(&hash)?.map(|height| BlockRef { height, hash }),
            None => None,
        };
        Ok(Some(TxInfo { tx, block }))
    }

    fn utxo(&self, outpoint: &OutPoint, include_mempool: bool) -> Result<Option<UtxoInfo>, ChainSourceError> {
        let params = [json!(outpoint.txid.to_string()), json!(outpoint.vout), json!(include_mempool)];
        let Some(reply) = self.call::<Option<TxOutReply>>("gettxout", &params)? else {
            return Ok(None);
        };
        let script_pubkey =
            ScriptBuf::from_hex(&reply.script_pubkey.hex).map_err(|e| protocol("gettxout", e))?;
        let txout = TxOut { value: btc_to_amount(reply.value)?, script_pubkey };
        let height = if reply.confirmations == 0 {
            None
        } else {
            let best =
                self.height_of(&reply.bestblock)?.ok_or(ChainSourceError::UnknownBlock(reply.bestblock))?;
            Some((best + 1).saturating_sub(reply.confirmations))
        };
        Ok(Some(UtxoInfo { txout, height, coinbase: reply.coinbase }))
    }
}
