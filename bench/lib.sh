# shellcheck shell=bash
# Shell helpers shared by the bench scripts and scripts/build-pgo; sourced from the repository
# root (`source bench/lib.sh`), not run.

# port: a free TCP port on loopback.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# keyed_policy PORTCULLIS DIR TENANT: writes DIR/policy.toml, examples/sdk-api.toml with its
# SQLite key store in DIR, makes one API key there for TENANT with the PORTCULLIS binary, and
# prints the key (the policy requires one on the measured path, as load.py's `with_bench_key`).
keyed_policy() {
  sed "s|\"sqlite:portcullis-keys.db\"|\"sqlite:$2/keys.db\"|" examples/sdk-api.toml >"$2/policy.toml"
  "$1" keys --config "$2/policy.toml" create --tenant "$3" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}

# floor_conf POLICY OUT: writes the floor proxy's configuration for POLICY (as load.py does),
# with the identity headers of a key made by keyed_policy.
floor_conf() {
  python3 -B - "$1" "$2" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "bench")
import load
posture = load.load_posture(Path(sys.argv[1]))
Path(sys.argv[2]).write_text(load.floor_conf(posture, keyed=True))
EOF
}
