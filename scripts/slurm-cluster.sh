#!/usr/bin/env bash
# A single-host Slurm cluster for runner's tests and benchmarks, from Debian's
# packages: munge, MariaDB + slurmdbd (so that `sacct` works), slurmctld and
# slurmd. One partition `test` with 4 CPUs (more than the 2 cores here, on
# purpose: jobs wait on each other more than they compute) and 8 GiB that
# Slurm hands out by `--mem`, enforced (jobs over their memory are killed).
#
#   bash scripts/slurm-cluster.sh start   # installs the packages if missing (apt-get), starts it
#   bash scripts/slurm-cluster.sh stop    # stops what start started
#   bash scripts/slurm-cluster.sh env     # prints `export SLURM_CONF=…` for a shell
#
# Everything lives in $RUNNER_SLURM_DIR (default /tmp/runner-slurm): configs,
# state, logs, the database. Ports are 16817–16819 and 13307, on 127.0.0.1.
# Needs root (it starts daemons and may install packages), as CI has.
set -euo pipefail

D="${RUNNER_SLURM_DIR:-/tmp/runner-slurm}"
HOST="$(hostname -s)"
export SLURM_CONF="$D/etc/slurm.conf"
DB_PORT=13307

log() { echo "slurm-cluster: $*" >&2; }

install_packages() {
  local missing=()
  for bin in munged slurmctld slurmd slurmdbd mariadbd sbatch sacct; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Slurm, munge and MariaDB from Debian (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
  fi
}

write_configs() {
  mkdir -p "$D"/{etc,state,spool,log,run,db}
  local cpus=4 mem=8000
  cat >"$D/etc/slurm.conf" <<EOF
ClusterName=runnertest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Start batch jobs as soon as they fit (the default waits up to 3 s to batch them).
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
# The node's CPUs and memory come from here, not from the hardware.
SlurmdParameters=config_overrides
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
# Memory limits on: a job is killed when it goes over its --mem.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=16819
JobCompType=jobcomp/none
# Ended jobs stay visible to squeue for a minute, then only to sacct.
MinJobAge=60
KillWait=2
InactiveLimit=0
Waittime=0
SlurmdTimeout=30
MaxJobCount=20000
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=256
EOF
  cat >"$D/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=16819
SlurmUser=root
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=runner-test
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$D/etc/slurmdbd.conf"
}

wait_for() { # seconds, description, command…
  local n=$1 what=$2
  shift 2
  for _ in $(seq $((n * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "timed out waiting for $what; logs in $D/log"
  tail -n 20 "$D"/log/*.log >&2 2>/dev/null || true
  exit 1
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged sh -c 'munge -n | unmunge'
}

start_db() {
  if [ ! -d "$D/db/mysql" ]; then
    mariadb-install-db --user=root --datadir="$D/db" --auth-root-authentication-method=socket \
      --skip-test-db >"$D/log/mariadb-install.log" 2>&1
  fi
  if ! mariadb-admin --socket="$D/run/mysqld.sock" ping >/dev/null 2>&1; then
    mariadbd --user=root --datadir="$D/db" --socket="$D/run/mysqld.sock" \
      --bind-address=127.0.0.1 --port=$DB_PORT --skip-name-resolve \
      --pid-file="$D/run/mariadbd.pid" --log-error="$D/log/mariadbd.log" \
      --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
    wait_for 30 MariaDB mariadb-admin --socket="$D/run/mysqld.sock" ping
  fi
  mariadb --socket="$D/run/mysqld.sock" -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'runner-test';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

daemon_alive() { # pidfile
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
  install_packages
  write_configs
  start_munge
  start_db
  daemon_alive "$D/run/slurmdbd.pid" || slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -i -n add cluster runnertest >/dev/null 2>&1 || true
  daemon_alive "$D/run/slurmctld.pid" || slurmctld -f "$SLURM_CONF"
  wait_for 30 slurmctld scontrol ping
  daemon_alive "$D/run/slurmd.pid" || slurmd -f "$SLURM_CONF"
  wait_for 30 "the node to be idle" sh -c "sinfo -h -N -o %T | grep -qx idle"
  log "up: partition test on $HOST ($(sinfo -h -o '%c CPUs, %m MB')); export SLURM_CONF=$SLURM_CONF"
}

stop_pid() { # pidfile
  if daemon_alive "$1"; then
    local pid
    pid="$(cat "$1")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}

stop() {
  scancel --full --user="$(id -un)" >/dev/null 2>&1 || true
  stop_pid "$D/run/slurmd.pid"
  stop_pid "$D/run/slurmctld.pid"
  stop_pid "$D/run/slurmdbd.pid"
  stop_pid "$D/run/mariadbd.pid"
  log "stopped (munged, shared with the host, keeps running)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
