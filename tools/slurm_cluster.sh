#!/usr/bin/env bash
# A private one-node Slurm cluster on this machine, for tests/test_slurm.py and for
# trying the tools/slurm_*.sh launchers without a real cluster.
#
#   bash tools/slurm_cluster.sh start    # install (Debian, root) if missing, start, wait until idle
#   bash tools/slurm_cluster.sh stop     # cancel its jobs, stop its daemons (by their pid files)
#   bash tools/slurm_cluster.sh status   # exit 0 when it runs, 1 when not
#   bash tools/slurm_cluster.sh env      # the line to eval: export SLURM_CONF=...
#
#   eval "$(bash tools/slurm_cluster.sh start | tail -n1)"; sinfo; srun -n1 hostname
#
# Everything (munge key and socket, slurm.conf, state, logs, pid files) lives in one
# state dir, DT_SLURM_DIR (default /tmp/dropout-transfer-slurm); the daemons listen on
# 127.0.0.1 ports DT_SLURM_PORT and DT_SLURM_PORT+1 (default 16817, 16818), away from
# Slurm's defaults so that a system cluster is left alone. Partition: debug.
# The daemons run as root (slurmd starts jobs as their users); without root, apt or
# the packages, `start` exits 3 with one line saying why, so that callers can skip.
set -euo pipefail

DIR="${DT_SLURM_DIR:-/tmp/dropout-transfer-slurm}"
PORT="${DT_SLURM_PORT:-16817}"
CONF="$DIR/slurm.conf"
SOCK="$DIR/munge/munge.sock"
PACKAGES=(slurmctld slurmd slurm-client munge)
# daemon name -> pid file (the daemons write them; stop and status read them)
declare -A PIDFILE=([slurmd]="$DIR/slurmd.pid" [slurmctld]="$DIR/slurmctld.pid" [munged]="$DIR/munge/munged.pid")

usage() { echo "usage: bash tools/slurm_cluster.sh start|stop|status|env" >&2; exit 2; }
cannot() { echo "slurm_cluster: cannot start: $*" >&2; exit 3; }
say() { echo "slurm_cluster: $*"; }

[[ $# -eq 1 ]] || usage
[[ "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1024 && "$PORT" -le 65534 ]] \
  || { echo "slurm_cluster: DT_SLURM_PORT=$PORT is not a port number in 1024..65534" >&2; exit 2; }

# The pid in a pid file, when that process is alive and is the daemon (a pid can be reused).
live_pid() {
  local name=$1 file=${PIDFILE[$1]} pid
  [[ -f "$file" ]] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [[ -n "$pid" && -r /proc/$pid/comm && "$(cat /proc/$pid/comm)" == "$name" ]] || return 1
  echo "$pid"
}

node_state() { SLURM_CONF="$CONF" timeout 10 sinfo -h -N -o %T 2>/dev/null | head -n1; }

running() {
  local d
  for d in munged slurmctld slurmd; do live_pid "$d" >/dev/null || return 1; done
  [[ -n "$(node_state)" ]]
}

stop_daemons() {
  local d pid i
  if live_pid slurmctld >/dev/null && command -v squeue >/dev/null; then
    # Jobs outlive slurmd (their slurmstepd is detached): end them while the cluster can.
    local jobs
    jobs=$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [[ -n "$jobs" ]]; then
      # shellcheck disable=SC2086
      SLURM_CONF="$CONF" scancel $jobs 2>/dev/null || true
      for i in $(seq 40); do
        [[ -z "$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %i 2>/dev/null || true)" ]] && break
        sleep 0.5
      done
    fi
  fi
  for d in slurmd slurmctld munged; do
    pid=$(live_pid "$d") || continue
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
    [[ -d /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null || true
    rm -f "${PIDFILE[$d]}"
  done
}

install_packages() {
  local missing=0 b
  for b in slurmctld slurmd sinfo munged; do command -v "$b" >/dev/null || missing=1; done
  ((missing)) || return 0
  [[ $EUID -eq 0 ]] || cannot "Slurm is not installed and we are not root to install it (${PACKAGES[*]})"
  command -v apt-get >/dev/null || cannot "Slurm is not installed and there is no apt-get to install it (${PACKAGES[*]})"
  say "installing ${PACKAGES[*]} (log: $DIR/apt.log)"
  # Another apt run on the machine holds the lock for a while: wait for it rather than fail.
  if ! { apt-get -o DPkg::Lock::Timeout=600 update \
         && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
              --no-install-recommends "${PACKAGES[@]}"; } >"$DIR/apt.log" 2>&1; then
    cannot "apt-get could not install ${PACKAGES[*]}: $(grep -E '^E:' "$DIR/apt.log" | head -n1) (see $DIR/apt.log)"
  fi
  for b in slurmctld slurmd sinfo munged; do
    command -v "$b" >/dev/null || cannot "$b is still missing after installing ${PACKAGES[*]}"
  done
}

write_conf() {
  local host node cpus topo mem total
  host=$(hostname -s)
  # Jobs use the node name as MASTER_ADDR (scontrol show hostnames), so it must resolve.
  node=$host
  getent hosts "$node" >/dev/null || node=localhost
  # The node's real topology, as slurmd sees it, so that nothing drains it for a mismatch.
  topo=$(slurmd -C 2>/dev/null | head -n1 | grep -oE '(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=[0-9]+' | tr '\n' ' ' || true)
  [[ "$topo" == *CPUs=* ]] || { cpus=$(nproc); topo="CPUs=$cpus"; }
  total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  mem=$((total > 1024 ? total - 512 : total))  # leave the OS some room
  cat >"$CONF" <<EOF
# Written by tools/slurm_cluster.sh: a private one-node cluster on 127.0.0.1.
ClusterName=dropout-transfer
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=${PIDFILE[slurmctld]}
SlurmdPidFile=${PIDFILE[slurmd]}
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No systemd or cgroups here: track job processes through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Start batch jobs at once (the default waits 3 s between them).
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
# scancel: SIGKILL 5 s after SIGTERM (default 30 s).
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node $topo RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  echo "$node"
}

start_munged() {
  live_pid munged >/dev/null && return 0
  local key=$DIR/munge/munge.key
  if [[ ! -s "$key" ]]; then
    if command -v mungekey >/dev/null; then
      mungekey -c -k "$key" >/dev/null 2>&1 || cannot "mungekey could not create $key"
    else
      head -c 1024 /dev/urandom >"$key"
    fi
    chmod 600 "$key"
  fi
  rm -f "$SOCK" "$SOCK.lock"  # left by a munged that was killed
  munged --socket="$SOCK" --key-file="$key" --pid-file="${PIDFILE[munged]}" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munge.seed" </dev/null >>"$DIR/log/start.log" 2>&1 9>&- \
    || cannot "munged did not start: $(tail -n1 "$DIR/log/munged.log" 2>/dev/null) (see $DIR/log/)"
  munge -S "$SOCK" -n 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1 \
    || cannot "munge credentials do not round-trip through $SOCK (see $DIR/log/munged.log)"
}

already() {
  say "already running (node $(node_state), state dir $DIR); nothing to do"
  echo "export SLURM_CONF=$CONF"
}

start() {
  if running; then already; return 0; fi
  [[ $EUID -eq 0 ]] || cannot "not root (the Slurm daemons here run as root)"
  { mkdir -p "$DIR" && exec 9>"$DIR/lock"; } 2>/dev/null || cannot "state dir $DIR is not writable"
  flock 9  # two callers starting at once (tests/ and run_tests.sh) start one cluster
  # (the daemons are started with fd 9 closed: one holding it would block every later call)
  if running; then already; return 0; fi
  install_packages
  # munged wants its socket's directory traversable and nothing group/world-writable above its files.
  mkdir -p "$DIR/munge" "$DIR/log" "$DIR/ctld" "$DIR/slurmd"
  chmod 755 "$DIR" "$DIR/munge" "$DIR/log"
  local node i state=""
  node=$(write_conf)
  start_munged
  if ! live_pid slurmctld >/dev/null; then
    # -c: a new cluster, without jobs recovered from a previous one's state.
    slurmctld -c -f "$CONF" </dev/null >>"$DIR/log/start.log" 2>&1 9>&- || true
  fi
  if ! live_pid slurmd >/dev/null; then
    slurmd -f "$CONF" -N "$node" </dev/null >>"$DIR/log/start.log" 2>&1 9>&- || true
  fi
  for i in $(seq 120); do
    state=$(node_state || true)
    [[ "$state" == idle || "$state" == mixed || "$state" == allocated ]] && break
    sleep 0.5
  done
  if [[ "$state" != idle && "$state" != mixed && "$state" != allocated ]]; then
    local why
    why=$(grep -hE 'error|fatal' "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" "$DIR/log/start.log" 2>/dev/null | tail -n1)
    stop_daemons
    cannot "node $node not idle within 60 s (state '${state:-no answer}'; ${why:-no error logged}; see $DIR/log/)"
  fi
  say "running: node $node $state, partition debug, state dir $DIR"
  echo "export SLURM_CONF=$CONF"
}

case $1 in
  start) start ;;
  stop)
    if [[ -d "$DIR" ]]; then
      exec 9>"$DIR/lock"; flock 9
      stop_daemons
    fi
    say "stopped" ;;
  status)
    if running; then say "running (node $(node_state)), SLURM_CONF=$CONF"; else say "not running"; exit 1; fi ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) usage ;;
esac
