//! The JSON-RPC methods of the embedded chain, with Bitcoin Core's parameter
//! names, defaults, result shapes and error codes.

use std::str::FromStr;
use std::time::Instant;

use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{Address, Amount, BlockHash, FeeRate, Network, OutPoint, Transaction, Txid};
use serde_json::{json, Map, Value};

use super::codes::*;
use super::json;
use super::RpcError;
use crate::regtest::validate::TxError;
use crate::regtest::{Entry, InvalidateError, Mempool, MineError, RegtestChain, SubmitError};
use crate::ChainSource;

/// Bitcoin Core's default `maxfeerate` for `sendrawtransaction` and
/// `testmempoolaccept`: 0.10 BTC/kvB.
const DEFAULT_MAX_FEE_RATE_BTC_KVB: f64 = 0.10;

/// The most blocks one `generatetoaddress` mines, so that a typo cannot
/// occupy the chain for hours.
const MAX_BLOCKS_PER_CALL: u32 = 10_000;

/// The methods served, with their parameter names in order (for named
/// parameters).
const METHODS: &[(&str, &[&str])] = &[
    ("getblockchaininfo", &[]),
    ("getblockcount", &[]),
    ("getbestblockhash", &[]),
    ("getblockhash", &["height"]),
    ("getblockheader", &["blockhash", "verbose"]),
    ("getblock", &["blockhash", "verbosity"]),
    ("getrawtransaction", &["txid", "verbose", "blockhash"]),
    ("sendrawtransaction", &["hexstring", "maxfeerate", "maxburnamount"]),
    ("testmempoolaccept", &["rawtxs", "maxfeerate"]),
    ("gettxout", &["txid", "n", "include_mempool"]),
    ("getrawmempool", &["verbose", "mempool_sequence"]),
    ("getmempoolinfo", &[]),
    ("getmempoolentry", &["txid"]),
    ("estimatesmartfee", &["conf_target", "estimate_mode"]),
    ("generatetoaddress", &["nblocks", "address", "maxtries"]),
    ("generateblock", &["output", "transactions", "submit"]),
    ("invalidateblock", &["blockhash"]),
    ("getnetworkinfo", &[]),
    ("uptime", &[]),
];

/// What the methods need besides the chain.
pub struct Context<'a> {
    /// The chain served.
    pub chain: &'a RegtestChain,
    /// When the server started, for `uptime`.
    pub started: Instant,
}

/// Runs one method call.
pub fn dispatch(ctx: &Context<'_>, method: &str, raw_params: &Value) -> Result<Value, RpcError> {
    let Some((name, names)) = METHODS.iter().find(|(name, _)| *name == method) else {
        return Err(RpcError::new(METHOD_NOT_FOUND, "Method not found"));
    };
    let p = Params::new(name, names, raw_params)?;
    let chain = ctx.chain;
    match *name {
        "getblockchaininfo" => Ok(blockchain_info(chain)),
        "getblockcount" => Ok(json!(chain.height())),
        "getbestblockhash" => Ok(json!(chain.tip().hash.to_string())),
        "getblockhash" => block_hash(chain, &p),
        "getblockheader" => block_header(chain, &p),
        "getblock" => get_block(chain, &p),
        "getrawtransaction" => raw_transaction(chain, &p),
        "sendrawtransaction" => send_raw_transaction(chain, &p),
        "testmempoolaccept" => test_mempool_accept(chain, &p),
        "gettxout" => tx_out(chain, &p),
        "getrawmempool" => raw_mempool(chain, &p),
        "getmempoolinfo" => Ok(mempool_info(chain)),
        "getmempoolentry" => get_mempool_entry(chain, &p),
        "estimatesmartfee" => estimate_smart_fee(chain, &p),
        "generatetoaddress" => generate_to_address(chain, &p),
        "generateblock" => generate_block(chain, &p),
        "invalidateblock" => invalidate_block(chain, &p),
        "getnetworkinfo" => Ok(network_info()),
        "uptime" => Ok(json!(ctx.started.elapsed().as_secs())),
        _ => Err(RpcError::new(METHOD_NOT_FOUND, "Method not found")),
    }
}

/// Positional parameters, with named ones mapped to their positions.
struct Params {
    method: &'static str,
    names: &'static [&'static str],
    values: Vec<Value>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Params {
    fn new(method: &'static str, names: &'static [&'static str], raw: &Value) -> Result<Self, RpcError> {
        let values = match raw {
            Value::Null => Vec::new(),
            Value::Array(values) => {
                if values.len() > names.len() {
                    return Err(RpcError::new(
                        MISC_ERROR,
                        format!("{method}: too many parameters (it takes at most {})", names.len()),
                    ));
                }
                values.clone()
            }
            Value::Object(map) => {
                let mut values = vec![Value::Null; names.len()];
                for (key, value) in map {
                    let Some(pos) = names.iter().position(|n| n == key) else {
                        return Err(RpcError::new(
                            INVALID_PARAMETER,
                            format!("Unknown named parameter {key}"),
                        ));
                    };
                    values[pos] = value.clone();
                }
                while values.last() == Some(&Value::Null) {
                    values.pop();
                }
                values
            }
            _ => return Err(RpcError::new(INVALID_REQUEST, "Params must be an array or object")),
        };
        Ok(Self { method, names, values })
    }

    fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i).filter(|v| !v.is_null())
    }

    fn required(&self, i: usize) -> Result<&Value, RpcError> {
        self.get(i).ok_or_else(|| {
            RpcError::new(
                MISC_ERROR,
                format!("{}: missing required parameter {}", self.method, self.names[i]),
            )
        })
    }

    fn type_error(&self, i: usize, v: &Value, expected: &str) -> RpcError {
        RpcError::new(
            TYPE_ERROR,
            format!(
                "JSON value of type {} for field {} is not of expected type {expected}",
                type_name(v),
                self.names[i]
            ),
        )
    }

    fn str(&self, i: usize) -> Result<&str, RpcError> {
        let v = self.required(i)?;
        v.as_str().ok_or_else(|| self.type_error(i, v, "string"))
    }

    fn int(&self, i: usize) -> Result<Option<i64>, RpcError> {
        match self.get(i) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| self.type_error(i, v, "number")),
        }
    }

    fn required_int(&self, i: usize) -> Result<i64, RpcError> {
        let v = self.required(i)?;
        v.as_i64().ok_or_else(|| self.type_error(i, v, "number"))
    }

    fn bool(&self, i: usize, default: bool) -> Result<bool, RpcError> {
        match self.get(i) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.type_error(i, v, "bool")),
        }
    }

    /// A verbosity that may be given as a bool or a number (Core accepts
    /// both).
    fn verbosity(&self, i: usize, default: u64) -> Result<u64, RpcError> {
        match self.get(i) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(u64::from(*b)),
            Some(v) => v.as_u64().ok_or_else(|| self.type_error(i, v, "number")),
        }
    }

    /// A fee rate in BTC/kvB, given as a number or a string.
    fn btc_per_kvb(&self, i: usize, default: f64) -> Result<f64, RpcError> {
        let value = match self.get(i) {
            None => return Ok(default),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.parse::<f64>().ok(),
            Some(v) => return Err(self.type_error(i, v, "number")),
        };
        match value {
            Some(v) if v >= 0.0 && v.is_finite() => Ok(v),
            _ => Err(RpcError::new(INVALID_PARAMETER, "Amount out of range")),
        }
    }

    /// A 32-byte hash in hex, with Core's messages for bad input.
    fn hash<T: FromStr>(&self, i: usize) -> Result<T, RpcError> {
        let s = self.str(i)?;
        let name = self.names[i];
        if s.len() != 64 {
            return Err(RpcError::new(
                INVALID_PARAMETER,
                format!("{name} must be of length 64 (not {}, for '{s}')", s.len()),
            ));
        }
        s.parse().map_err(|_| {
            RpcError::new(INVALID_PARAMETER, format!("{name} must be hexadecimal string (not '{s}')"))
        })
    }
}

fn block_not_found() -> RpcError {
    RpcError::new(INVALID_ADDRESS_OR_KEY, "Block not found")
}

fn blockchain_info(chain: &RegtestChain) -> Value {
    let inner = chain.lock();
    let state = &inner.state;
    let tip = state.tip();
    let (block, _) = state.block(&tip.hash).expect("the tip is a known block");
    let size: usize = (0..=tip.height).filter_map(|h| state.block_at(h)).map(|b| b.total_size()).sum();
    json!({
        "chain": "regtest",
        "blocks": tip.height,
        "headers": tip.height,
        "bestblockhash": tip.hash.to_string(),
        "bits": format!("{:08x}", block.header.bits.to_consensus()),
        "target": format!("{:064x}", block.header.target()),
        "difficulty": block.header.difficulty_float(),
        "time": block.header.time,
        "mediantime": state.median_time_past(tip.height),
        "verificationprogress": 1.0,
        "initialblockdownload": false,
        "chainwork": state.chain_work_hex(tip.height),
        "size_on_disk": size,
        "pruned": false,
        "warnings": [],
    })
}

fn block_hash(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let height = p.required_int(0)?;
    u32::try_from(height)
        .ok()
        .and_then(|h| chain.block_hash(h).ok().flatten())
        .map(|hash| json!(hash.to_string()))
        .ok_or_else(|| RpcError::new(INVALID_PARAMETER, "Block height out of range"))
}

fn block_header(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let hash: BlockHash = p.hash(0)?;
    let verbose = p.bool(1, true)?;
    let inner = chain.lock();
    let (block, height) = inner.state.block(&hash).ok_or_else(block_not_found)?;
    if !verbose {
        return Ok(json!(serialize_hex(&block.header)));
    }
    Ok(Value::Object(json::header(&inner.state, &hash, block, height)))
}

fn get_block(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let hash: BlockHash = p.hash(0)?;
    let verbosity = p.verbosity(1, 1)?;
    let inner = chain.lock();
    let (block, height) = inner.state.block(&hash).ok_or_else(block_not_found)?;
    if verbosity == 0 {
        return Ok(json!(serialize_hex(&**block)));
    }
    Ok(json::block(&inner.state, &hash, block, height, verbosity))
}

fn raw_transaction(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let txid: Txid = p.hash(0)?;
    let verbose = p.verbosity(1, 0)? > 0;
    let inner = chain.lock();
    let state = &inner.state;
    let found: Option<(Transaction, Option<BlockHash>)> = match p.get(2) {
        Some(_) => {
            let hash: BlockHash = p.hash(2)?;
            let (block, _) = state
                .block(&hash)
                .ok_or_else(|| RpcError::new(INVALID_ADDRESS_OR_KEY, "Block hash not found"))?;
            let tx = block.txdata.iter().find(|tx| tx.compute_txid() == txid).ok_or_else(|| {
                RpcError::new(
                    INVALID_ADDRESS_OR_KEY,
                    "No such transaction found in the provided block. Use gettransaction for wallet transactions.",
                )
            })?;
            Some((tx.clone(), Some(hash)))
        }
        None => match state.tx_location(&txid) {
            Some(loc) => {
                let (block, _) = state.block(&loc.block).expect("indexed blocks are known");
                Some((block.txdata[loc.index].clone(), Some(loc.block)))
            }
            None => inner.pool.get(&txid).map(|e| ((*e.tx).clone(), None)),
        },
    };
    let Some((tx, block_hash)) = found else {
        return Err(RpcError::new(
            INVALID_ADDRESS_OR_KEY,
            "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
        ));
    };
    if !verbose {
        return Ok(json!(serialize_hex(&tx)));
    }
    let mut o = json::transaction_with_hex(&tx);
    if let Some(hash) = block_hash {
        let (block, height) = state.block(&hash).expect("found above");
        o.insert("blockhash".into(), json!(hash.to_string()));
        if p.get(2).is_some() {
            o.insert("in_active_chain".into(), json!(state.is_active(&hash)));
        }
        if state.is_active(&hash) {
            o.insert("confirmations".into(), json!(state.height() - height + 1));
            o.insert("time".into(), json!(block.header.time));
            o.insert("blocktime".into(), json!(block.header.time));
        } else {
            o.insert("confirmations".into(), json!(0));
        }
    }
    Ok(Value::Object(o))
}

fn decode_tx(hex: &str) -> Result<Transaction, RpcError> {
    deserialize_hex(hex).map_err(|_| {
        RpcError::new(DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has at least one input.")
    })
}

/// The fee rate of a transaction paying `fee`, in BTC/kvB.
fn btc_per_kvb(fee: Amount, tx: &Transaction) -> f64 {
    fee.to_btc() * 1000.0 / tx.vsize() as f64
}

fn tx_error_data(error: &TxError) -> Value {
    json!({"reject-reason": error.reject_reason(), "detail": error.to_string()})
}

fn send_raw_transaction(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let tx = decode_tx(p.str(0)?)?;
    let max_fee_rate = p.btc_per_kvb(1, DEFAULT_MAX_FEE_RATE_BTC_KVB)?;
    let max_burn = p.btc_per_kvb(2, 0.0)?;
    let burned: Amount = tx.output.iter().filter(|o| o.script_pubkey.is_op_return()).map(|o| o.value).sum();
    if burned.to_btc() > max_burn {
        return Err(RpcError::new(
            VERIFY_ERROR,
            "Unspendable output exceeds maximum configured by user (maxburnamount)",
        ));
    }
    if max_fee_rate > 0.0 {
        if let Some(Ok(fee)) = chain.test_accept(std::slice::from_ref(&tx)).into_iter().next() {
            if btc_per_kvb(fee, &tx) > max_fee_rate {
                return Err(RpcError::new(
                    VERIFY_ERROR,
                    "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
                ));
            }
        }
    }
    match chain.submit_transaction(&tx) {
        Ok(txid) => Ok(json!(txid.to_string())),
        Err(SubmitError::Invalid(TxError::AlreadyInMempool { txid })) => Ok(json!(txid.to_string())),
        Err(SubmitError::Invalid(error)) => {
            let message = match &error {
                TxError::AlreadyInChain { .. } => "Transaction outputs already in utxo set".to_owned(),
                TxError::MissingInput { .. } => "Inputs missing or spent".to_owned(),
                TxError::ScriptFailed { reason, .. } => format!("{} ({reason})", error.reject_reason()),
                _ => error.reject_reason().to_owned(),
            };
            Err(RpcError { code: error.rpc_code(), message, data: Some(tx_error_data(&error)) })
        }
        Err(SubmitError::Store(e)) => Err(RpcError::new(INTERNAL_ERROR, e.to_string())),
    }
}

fn test_mempool_accept(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let raw = p.required(0)?;
    let list = raw.as_array().ok_or_else(|| p.type_error(0, raw, "array"))?;
    if list.is_empty() || list.len() > 25 {
        return Err(RpcError::new(INVALID_PARAMETER, "Array must contain between 1 and 25 transactions."));
    }
    let max_fee_rate = p.btc_per_kvb(1, DEFAULT_MAX_FEE_RATE_BTC_KVB)?;
    let txs = list
        .iter()
        .map(|v| v.as_str().ok_or_else(|| p.type_error(0, v, "string")).and_then(decode_tx))
        .collect::<Result<Vec<_>, _>>()?;
    let results = chain.test_accept(&txs);
    let out: Vec<Value> = txs
        .iter()
        .zip(results)
        .map(|(tx, result)| {
            let mut o = Map::new();
            o.insert("txid".into(), json!(tx.compute_txid().to_string()));
            o.insert("wtxid".into(), json!(tx.compute_wtxid().to_string()));
            match result {
                Ok(fee) if max_fee_rate > 0.0 && btc_per_kvb(fee, tx) > max_fee_rate => {
                    o.insert("allowed".into(), json!(false));
                    o.insert("reject-reason".into(), json!("max-fee-exceeded"));
                }
                Ok(fee) => {
                    o.insert("allowed".into(), json!(true));
                    o.insert("vsize".into(), json!(tx.vsize()));
                    o.insert(
                        "fees".into(),
                        json!({
                            "base": json::btc(fee),
                            "effective-feerate": btc_per_kvb(fee, tx),
                            "effective-includes": [tx.compute_wtxid().to_string()],
                        }),
                    );
                }
                Err(error) => {
                    let reason = match error {
                        TxError::MissingInput { .. } => "missing-inputs",
                        _ => error.reject_reason(),
                    };
                    o.insert("allowed".into(), json!(false));
                    o.insert("reject-reason".into(), json!(reason));
                    o.insert("reject-details".into(), json!(error.to_string()));
                }
            }
            Value::Object(o)
        })
        .collect();
    Ok(Value::Array(out))
}

fn tx_out(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let txid: Txid = p.hash(0)?;
    let vout = u32::try_from(p.required_int(1)?)
        .map_err(|_| RpcError::new(INVALID_PARAMETER, "Invalid parameter, vout cannot be negative"))?;
    let include_mempool = p.bool(2, true)?;
    let outpoint = OutPoint { txid, vout };
    // One lock for the output and the tip, so a reorg cannot fall between.
    let inner = chain.lock();
    let tip = inner.state.tip();
    let (txout, confirmations, coinbase) = if include_mempool && inner.pool.spender(&outpoint).is_some() {
        return Ok(Value::Null);
    } else if let Some(coin) = inner.state.coin(&outpoint) {
        (coin.txout.clone(), tip.height.saturating_sub(coin.height) + 1, coin.coinbase)
    } else if let Some(txout) = include_mempool
        .then(|| inner.pool.get(&txid).and_then(|e| e.tx.output.get(vout as usize)))
        .flatten()
        .filter(|o| !o.script_pubkey.is_op_return())
    {
        (txout.clone(), 0, false)
    } else {
        return Ok(Value::Null);
    };
    Ok(json!({
        "bestblock": tip.hash.to_string(),
        "confirmations": confirmations,
        "value": json::btc(txout.value),
        "scriptPubKey": json::script_pubkey(&txout.script_pubkey),
        "coinbase": coinbase,
    }))
}

/// Core's mempool entry object (`getmempoolentry`, verbose
/// `getrawmempool`).
fn mempool_entry(pool: &Mempool, entry: &Entry) -> Value {
    let sum = |txids: &[Txid]| -> (usize, Amount) {
        txids.iter().filter_map(|t| pool.get(t)).fold((0, Amount::ZERO), |(size, fee), e| {
            (size + e.tx.vsize(), fee.checked_add(e.fee).unwrap_or(Amount::MAX_MONEY))
        })
    };
    let ancestors = pool.with_ancestors(&entry.txid);
    let descendants = pool.with_descendants(&entry.txid);
    let (ancestor_size, ancestor_fees) = sum(&ancestors);
    let (descendant_size, descendant_fees) = sum(&descendants);
    let depends: Vec<String> = entry
        .tx
        .input
        .iter()
        .map(|i| i.previous_output.txid)
        .filter(|t| pool.contains(t))
        .map(|t| t.to_string())
        .collect();
    let spent_by: Vec<String> = (0..entry.tx.output.len())
        .filter_map(|vout| pool.spender(&OutPoint { txid: entry.txid, vout: vout as u32 }))
        .map(|t| t.to_string())
        .collect();
    let signals_rbf = entry.tx.input.iter().any(|i| i.sequence.is_rbf());
    json!({
        "vsize": entry.tx.vsize(),
        "weight": entry.tx.weight().to_wu(),
        "time": entry.time,
        "height": entry.height,
        "descendantcount": descendants.len(),
        "descendantsize": descendant_size,
        "ancestorcount": ancestors.len(),
        "ancestorsize": ancestor_size,
        "wtxid": entry.tx.compute_wtxid().to_string(),
        "fees": {
            "base": json::btc(entry.fee),
            "modified": json::btc(entry.fee),
            "ancestor": json::btc(ancestor_fees),
            "descendant": json::btc(descendant_fees),
        },
        "depends": depends,
        "spentby": spent_by,
        "bip125-replaceable": signals_rbf,
        "unbroadcast": false,
    })
}

fn raw_mempool(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let verbose = p.bool(0, false)?;
    let sequence = p.bool(1, false)?;
    if verbose && sequence {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            "Verbose results cannot contain mempool sequence values.",
        ));
    }
    let inner = chain.lock();
    let txids: Vec<String> = inner.pool.iter().map(|e| e.txid.to_string()).collect();
    if sequence {
        return Ok(json!({"txids": txids, "mempool_sequence": inner.pool.next_seq()}));
    }
    if !verbose {
        return Ok(json!(txids));
    }
    let out: Map<String, Value> =
        inner.pool.iter().map(|e| (e.txid.to_string(), mempool_entry(&inner.pool, e))).collect();
    Ok(Value::Object(out))
}

fn get_mempool_entry(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let txid: Txid = p.hash(0)?;
    let inner = chain.lock();
    let entry = inner
        .pool
        .get(&txid)
        .ok_or_else(|| RpcError::new(INVALID_ADDRESS_OR_KEY, "Transaction not in mempool"))?;
    Ok(mempool_entry(&inner.pool, entry))
}

fn mempool_info(chain: &RegtestChain) -> Value {
    let entries = chain.mempool_entries();
    let bytes: usize = entries.iter().map(|e| e.tx.vsize()).sum();
    let fees: Amount = entries.iter().map(|e| e.fee).sum();
    json!({
        "loaded": true,
        "size": entries.len(),
        "bytes": bytes,
        "usage": bytes,
        "total_fee": json::btc(fees),
        "maxmempool": 300_000_000u64,
        "mempoolminfee": 0.0,
        "minrelaytxfee": 0.0,
        "incrementalrelayfee": 0.0,
        "unbroadcastcount": 0,
        "fullrbf": false,
    })
}

fn estimate_smart_fee(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let target = p.required_int(0)?;
    if !(1..=1008).contains(&target) {
        return Err(RpcError::new(INVALID_PARAMETER, "Invalid conf_target, must be between 1 and 1008"));
    }
    if let Some(mode) = p.get(1) {
        let mode = mode.as_str().ok_or_else(|| p.type_error(1, mode, "string"))?;
        if !["unset", "economical", "conservative"].contains(&mode.to_ascii_lowercase().as_str()) {
            return Err(RpcError::new(
                INVALID_PARAMETER,
                "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"",
            ));
        }
    }
    let rate: FeeRate = chain.fee_rate();
    let sat_per_kvb = rate.to_sat_per_kwu() * 4;
    Ok(json!({"feerate": Amount::from_sat(sat_per_kvb).to_btc(), "blocks": target}))
}

fn parse_address(s: &str) -> Result<Address, RpcError> {
    Address::from_str(s)
        .ok()
        .and_then(|a| a.require_network(Network::Regtest).ok())
        .ok_or_else(|| RpcError::new(INVALID_ADDRESS_OR_KEY, "Error: Invalid address"))
}

fn mine_error(e: MineError) -> RpcError {
    match e {
        MineError::InvalidTransaction { index, error } => RpcError {
            code: VERIFY_ERROR,
            message: format!("TestBlockValidity failed: {} (transaction {index})", error.reject_reason()),
            data: Some(tx_error_data(&error)),
        },
        MineError::BlockTooHeavy { .. } => {
            RpcError::new(VERIFY_ERROR, "TestBlockValidity failed: bad-blk-weight")
        }
        e => RpcError::new(INTERNAL_ERROR, e.to_string()),
    }
}

fn generate_to_address(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let n = p.required_int(0)?;
    let address = parse_address(p.str(1)?)?;
    p.int(2)?;
    let n = u32::try_from(n).map_err(|_| RpcError::new(INVALID_PARAMETER, "nblocks must be non-negative"))?;
    if n > MAX_BLOCKS_PER_CALL {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            format!("nblocks above {MAX_BLOCKS_PER_CALL}; mine in several calls"),
        ));
    }
    let hashes = chain.mine(n, &address).map_err(mine_error)?;
    Ok(json!(hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>()))
}

fn generate_block(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let address = p
        .str(0)
        .and_then(parse_address)
        .map_err(|_| RpcError::new(INVALID_ADDRESS_OR_KEY, "Error: Invalid address or descriptor"))?;
    let raw = p.required(1)?;
    let list = raw.as_array().ok_or_else(|| p.type_error(1, raw, "array"))?;
    if !p.bool(2, true)? {
        return Err(RpcError::new(INVALID_PARAMETER, "submit=false is not supported by the embedded chain"));
    }
    let mempool = chain.mempool_entries();
    let mut txs = Vec::with_capacity(list.len());
    for item in list {
        let s = item.as_str().ok_or_else(|| p.type_error(1, item, "string"))?;
        if let Ok(txid) = Txid::from_str(s) {
            let entry = mempool.iter().find(|e| e.txid == txid).ok_or_else(|| {
                RpcError::new(INVALID_ADDRESS_OR_KEY, format!("Transaction {txid} not in mempool."))
            })?;
            txs.push((*entry.tx).clone());
        } else {
            txs.push(deserialize_hex(s).map_err(|_| {
                RpcError::new(
                    DESERIALIZATION_ERROR,
                    format!("Transaction decode failed for {s}. Make sure the tx has at least one input."),
                )
            })?);
        }
    }
    let hash = chain.mine_block_with(&address.script_pubkey(), &txs).map_err(mine_error)?;
    Ok(json!({"hash": hash.to_string()}))
}

fn invalidate_block(chain: &RegtestChain, p: &Params) -> Result<Value, RpcError> {
    let hash: BlockHash = p.hash(0)?;
    match chain.invalidate_block(&hash) {
        Ok(_) => Ok(Value::Null),
        Err(InvalidateError::UnknownBlock(_)) => Err(block_not_found()),
        Err(InvalidateError::Genesis) => {
            Err(RpcError::new(INVALID_PARAMETER, "The genesis block cannot be invalidated"))
        }
        Err(e) => Err(RpcError::new(INTERNAL_ERROR, e.to_string())),
    }
}

fn network_info() -> Value {
    json!({
        // The RPC dialect served is Bitcoin Core 28's.
        "version": 280000,
        "subversion": format!("/Vigil:{}/", env!("CARGO_PKG_VERSION")),
        "protocolversion": 70016,
        "localservices": "0000000000000409",
        "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED"],
        "localrelay": true,
        "timeoffset": 0,
        "networkactive": true,
        "connections": 0,
        "connections_in": 0,
        "connections_out": 0,
        "networks": [],
        "relayfee": 0.0,
        "incrementalfee": 0.0,
        "localaddresses": [],
        "warnings": [],
    })
}
