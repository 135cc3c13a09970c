#!/usr/bin/env bash
# Key rotation without downtime, checked: key 2 added next to key 1; both verify; key 1 given a
# valid_until in the past (retired); key 1's proofs are refused, key 2's accepted; key 1 deleted.
# Usage: rotation_check.sh <db> <prefix>   (after setup.sh; leaves key 2 as the only key)
set -euo pipefail
DB=$1; P=$2
K1=$(cat "${WALL_KEY_FILE:-/tmp/wall_key_hex}"); K2=$(openssl rand -hex 32)
A=00000000-0000-4000-8000-000000000001
su() { psql -X -q -At -h 127.0.0.1 -U postgres -d "$DB" -v ON_ERROR_STOP=1 "$@"; }
try() { # try <key id> <key hex> <nonce>: enter() as the app login signing with that key
  psql -X -q -At -h 127.0.0.1 -U "${P}app" -d "$DB" -v k="$2" -v kid="$1" -v n="$3" -v t="$A" <<'SQL'
SELECT pid, backend_start_us FROM wall.session_id() \gset
\set proof `printf '%s' ':t|:pid|:backend_start_us|:n' | openssl dgst -sha256 -mac HMAC -macopt hexkey::k | awk '{print $NF}'`
SELECT wall.enter(:'t', :n, :kid, :'proof');
SQL
}
echo "before: key1 $(try 1 "$K1" 1) key2 $(try 2 "$K2" 1)"
su -v k="$K2" <<<"INSERT INTO wall_private.keys (key_id, secret) VALUES (2, decode(:'k', 'hex'))"
echo "both valid: key1 $(try 1 "$K1" 1) key2 $(try 2 "$K2" 1)"
su -c "UPDATE wall_private.keys SET valid_until = now() WHERE key_id = 1"
echo "key 1 retired: key1 $(try 1 "$K1" 1) key2 $(try 2 "$K2" 1)"
su -c "DELETE FROM wall_private.keys WHERE key_id = 1 AND valid_until <= now()"
echo "key 1 deleted: key1 $(try 1 "$K1" 1) key2 $(try 2 "$K2" 1)"
