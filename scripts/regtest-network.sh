#!/usr/bin/env bash
# Three vigild processes on one regtest chain: Alice runs the embedded chain,
# Bob and Carol follow it over its bitcoind-compatible RPC. The script funds
# Alice and Bob, opens Alice -> Bob -> Carol from their wallets, and pays an
# invoice of Carol's from Alice across the two hops, with the `vigil` CLI.
#
#   scripts/regtest-network.sh          # build, run, pay, stop the nodes
#   KEEP=1 scripts/regtest-network.sh   # leave the nodes running afterwards
#
# Environment (all optional): BASE_DIR (default: a new temporary directory),
# VIGILD and VIGIL (the binaries; default: built with cargo), and the ports
# ALICE_PORTS, BOB_PORTS, CAROL_PORTS as "LISTEN API RPC" (defaults
# "19735 19737 19443", "19745 19747 19453", "19755 19757 19463").
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${VIGILD:-}" || -z "${VIGIL:-}" ]]; then
    cargo build --quiet -p vigild --bins
    VIGILD=${VIGILD:-target/debug/vigild}
    VIGIL=${VIGIL:-target/debug/vigil}
fi
BASE_DIR=${BASE_DIR:-$(mktemp -d -t vigil-regtest-XXXXXX)}
read -r -a ALICE <<< "${ALICE_PORTS:-19735 19737 19443}"
read -r -a BOB <<< "${BOB_PORTS:-19745 19747 19453}"
read -r -a CAROL <<< "${CAROL_PORTS:-19755 19757 19463}"
PIDS=()

stop_all() {
    if [[ -z "${KEEP:-}" ]]; then
        for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
    fi
}
trap stop_all EXIT

# start NAME LISTEN API RPC [vigild options...]
start() {
    local name=$1 listen=$2 api=$3 rpc=$4
    shift 4
    "$VIGILD" --data-dir "$BASE_DIR/$name" --listen "127.0.0.1:$listen" --api-bind "127.0.0.1:$api" \
        --rpc-bind "127.0.0.1:$rpc" "$@" 2>"$BASE_DIR/$name.log" &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        if grep -q "vigild ready" "$BASE_DIR/$name.log" 2>/dev/null; then return 0; fi
        if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
            echo "$name did not start:" >&2
            cat "$BASE_DIR/$name.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$name did not become ready in 30 s" >&2
    exit 1
}

# cli NAME API ARGS...: the vigil CLI against one node.
cli() {
    local name=$1 api=$2
    shift 2
    "$VIGIL" --data-dir "$BASE_DIR/$name" --api-url "http://127.0.0.1:$api" "$@"
}
alice() { cli alice "${ALICE[1]}" "$@"; }
bob() { cli bob "${BOB[1]}" "$@"; }
carol() { cli carol "${CAROL[1]}" "$@"; }

# until DESCRIPTION COMMAND...: retries the command for 60 s.
until_ok() {
    local what=$1
    shift
    for _ in $(seq 1 600); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting until $what" >&2
    exit 1
}

echo "data in $BASE_DIR"
start alice "${ALICE[@]}"
COOKIE="$BASE_DIR/alice/regtest/.cookie"
start bob "${BOB[@]}" --chain "rpc://127.0.0.1:${ALICE[2]}" --chain-cookie "$COOKIE"
start carol "${CAROL[@]}" --chain "rpc://127.0.0.1:${ALICE[2]}" --chain-cookie "$COOKIE"
BOB_ID=$(bob getinfo | sed -n 's/^node id *//p')
CAROL_ID=$(carol getinfo | sed -n 's/^node id *//p')
echo "alice, bob ($BOB_ID) and carol ($CAROL_ID) are running"

echo "funding alice and bob..."
alice chain mine 1 >/dev/null
alice chain mine 1 "$(bob newaddr)" >/dev/null
alice chain mine 100 "$(carol newaddr)" >/dev/null
has_funds() { "$@" balance | grep -q "^on chain *[1-9][0-9]* sat confirmed"; }
until_ok "alice is funded" has_funds alice
until_ok "bob is funded" has_funds bob

echo "opening alice -> bob -> carol..."
alice openchannel "$BOB_ID@127.0.0.1:${BOB[0]}" 1000000
bob openchannel "$CAROL_ID@127.0.0.1:${CAROL[0]}" 1000000
mempool_has_two() { alice --json chain info | grep -q '"mempool": 2'; }
until_ok "both fundings are broadcast" mempool_has_two
alice chain mine 6 >/dev/null
usable() { [[ $("$1" listchannels | grep -c " usable ") -eq $2 ]]; }
until_ok "alice's channel is usable" usable alice 1
until_ok "bob's channels are usable" usable bob 2
until_ok "carol's channel is usable" usable carol 1

echo "alice pays carol 25,000 sat through bob..."
INVOICE=$(carol invoice 25000000 --description "regtest network")
alice pay "$INVOICE" | tee "$BASE_DIR/pay.out"
grep -q succeeded "$BASE_DIR/pay.out"
until_ok "carol lists the payment" bash -c "\"$VIGIL\" --data-dir \"$BASE_DIR/carol\" --api-url http://127.0.0.1:${CAROL[1]} listpayments | grep -q 'inbound *succeeded'"
echo "carol's payments:"
carol listpayments
echo "ok: alice paid carol across two hops"
if [[ -n "${KEEP:-}" ]]; then
    echo "the nodes keep running (pids ${PIDS[*]}); e.g. $VIGIL --data-dir $BASE_DIR/alice --api-url http://127.0.0.1:${ALICE[1]} getinfo"
fi
