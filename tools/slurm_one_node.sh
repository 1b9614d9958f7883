#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for lungfast's Slurm tests (CI runs it; so can you, as root).
#   up:   install Debian's Slurm daemons and munge if missing, write a slurm.conf for this machine, start munged,
#         slurmctld and slurmd, and wait until the node takes jobs. Prints the wall time it took.
#   down: cancel every job, stop the daemons, remove what `up` wrote (the packages stay).
# It refuses to touch a machine that already has its own /etc/slurm/slurm.conf: that is a real cluster's.
set -euo pipefail
STATE=/var/lib/lungfast-slurm  # everything `up` writes but the config: state, spool, logs, pid files
CONF=/etc/slurm/slurm.conf
MARK="# written by lungfast tools/slurm_one_node.sh"

up() {
  local t0=$SECONDS
  [ "$(id -u)" = 0 ] || { echo "slurm_one_node: run as root (it installs packages and starts daemons)" >&2; exit 1; }
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "slurm_one_node: $CONF exists and is not ours: this machine already has a Slurm; use it" >&2; exit 1
  fi
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
  fi
  down quiet
  mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm /run/munge
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key /run/munge && chmod 400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  local host node
  host=$(hostname -s)
  node=$(slurmd -C | head -1)  # this machine as slurmd sees it: NodeName=<host> CPUs=.. RealMemory=..
  cat > "$CONF" <<EOF
$MARK
ClusterName=lungfast
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# no cgroups in a container: track processes by parent, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# one CPU and its memory per task, so several tasks share the node
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld
  slurmd
  for _ in $(seq 60); do
    sinfo -h -o %t 2>/dev/null | grep -qx idle && { echo "slurm_one_node: up in $((SECONDS - t0)) s"; sinfo; return; }
    sleep 1
  done
  echo "slurm_one_node: the node did not come up; logs in $STATE" >&2
  tail -5 "$STATE"/*.log >&2 || true
  exit 1
}

down() {
  if [ -f "$CONF" ] && grep -qF "$MARK" "$CONF"; then
    scancel --full --quiet --user=root 2>/dev/null || true
    rm -f "$CONF"
  fi
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
  for _ in $(seq 20); do { pgrep -x slurmd || pgrep -x slurmctld || pgrep -x munged; } >/dev/null || break; sleep 0.5; done
  rm -rf "$STATE"
  [ "${1:-}" = quiet ] || echo "slurm_one_node: down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
