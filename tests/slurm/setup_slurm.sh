#!/usr/bin/env bash
# A real single-node Slurm on this host, for tests/slurm/test_real_slurm.py and CI: Debian's Slurm 22.05
# with accounting through slurmdbd (the Snakemake Slurm plugin learns job states from sacct; without
# slurmdbd jobs run but Snakemake never sees them finish).
#
# Run as root. Safe to rerun: it installs only missing packages, rewrites a config only when its content
# changes (and then restarts that daemon), starts only daemons that are not running, and registers
# cluster, account and user only once. Works without systemd (containers): daemons are started directly.
set -euo pipefail

CLUSTER=drp            # Slurm cluster name, also the accounting cluster
ACCOUNT=drp            # the account jobs are charged to (profiles: slurm_account)
CPU_PARTITION=cpu      # partitions (profiles: slurm_partition), both on this one node
GPU_PARTITION=gpu
HOST=$(hostname -s)
LOGDIR=/var/log/slurm

log() { echo "setup_slurm: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"
command -v apt-get >/dev/null || die "needs apt-get (Debian/Ubuntu)"
getent hosts "$HOST" >/dev/null || die "host name $HOST does not resolve; add it to /etc/hosts"

# Two callers at once (CI step and the test itself) must not race on apt or on the daemons.
mkdir -p /run/lock
exec 9>/run/lock/drp-setup-slurm.lock
flock 9

# --- packages --------------------------------------------------------------------------------------------
packages=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# write_file PATH MODE OWNER: content from stdin; returns 0 when the file changed, 1 when it was up to date.
write_file() {
    local path=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        return 1
    fi
    install -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$path"
    rm -f "$tmp"
    return 0
}

running() { pgrep -x "$1" >/dev/null; }
# Daemons must not inherit the lock (fd 9), or they would hold it for their whole life.
start() { "$@" 9>&-; }

# stop_daemon NAME PIDFILE: stop a daemon this script started (found by its pid file), e.g. after a config change.
stop_daemon() {
    local name=$1 pidfile=$2 pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        log "restarting $name (configuration changed)"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    for _ in $(seq $((seconds * 2))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what not ready after ${seconds}s; see $LOGDIR/"
}

install -d -o slurm -g slurm "$LOGDIR" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd

# --- munge (authentication between all Slurm parts) ------------------------------------------------------
[[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
running munged || start service munge start >/dev/null
wait_for munged 20 bash -c 'munge -n | unmunge'

# --- MariaDB, the accounting store ----------------------------------------------------------------------
mysqladmin ping >/dev/null 2>&1 || start service mariadb start >/dev/null
wait_for mariadb 60 mysqladmin ping
# slurmdbd runs as the OS user slurm and logs in through the local socket, so no password exists anywhere.
mysql -u root <<'SQL'
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# --- configuration (written before any Slurm daemon starts: every Slurm command reads slurm.conf) -------
cpus=$(nproc)
# Memory is neither enforced (no cgroups in containers, jobacct_gather/none) nor consumable (CR_CPU) here,
# so the node declares 256 GB whatever the host has, and config_overrides stops slurmd from draining it
# for that: the production profile's memory requests, which grow with each retry, are accepted unchanged.
slurm_conf_changed=false
if write_file /etc/slurm/slurm.conf 644 root:root <<EOF
# Written by tests/slurm/setup_slurm.sh: one node that is controller, compute node and login node.
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
# Process tracking without cgroups, which containers often lack.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# The plugin names each job by its rule and wildcards in the comment; keep it for sacct (the tests read it).
AccountingStoreFlags=job_comment
ReturnToService=2
# Seconds between SIGTERM and SIGKILL when a job is cancelled or hits its time limit (the trainer's grace).
KillWait=30
GresTypes=gpu
NodeName=$HOST CPUs=$cpus RealMemory=262144 Gres=gpu:1 State=UNKNOWN
PartitionName=$CPU_PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=$GPU_PARTITION Nodes=$HOST MaxTime=INFINITE State=UP
EOF
then slurm_conf_changed=true; fi

# The node declares one GPU that is not a device (File=/dev/null): Slurm schedules and accounts --gpus
# requests as on a real GPU node, so the production profile's GPU training jobs run here unchanged (torch,
# finding no CUDA driver, trains on the CPU).
if write_file /etc/slurm/gres.conf 644 root:root <<EOF
# Written by tests/slurm/setup_slurm.sh
NodeName=$HOST Name=gpu File=/dev/null
EOF
then slurm_conf_changed=true; fi

slurmdbd_conf_changed=false
if write_file /etc/slurm/slurmdbd.conf 600 slurm:slurm <<EOF
# Written by tests/slurm/setup_slurm.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$LOGDIR/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
EOF
then slurmdbd_conf_changed=true; fi

# --- slurmdbd -------------------------------------------------------------------------------------------
if $slurmdbd_conf_changed; then stop_daemon slurmdbd /run/slurmdbd.pid; fi
running slurmdbd || start slurmdbd
wait_for slurmdbd 60 sacctmgr -n list cluster

# The cluster must be known to slurmdbd before slurmctld registers with it.
if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

# --- slurmctld and slurmd -------------------------------------------------------------------------------
if $slurm_conf_changed; then
    stop_daemon slurmd /run/slurmd.pid
    stop_daemon slurmctld /run/slurmctld.pid
fi
running slurmctld || start slurmctld
wait_for slurmctld 60 scontrol ping
running slurmd || start slurmd
# A node drained under an earlier configuration stays drained; the current one has just been applied.
sleep 1
if sinfo -h -n "$HOST" -o %t | grep -Eq '^(drain|drng|down|inval|fail)'; then
    scontrol update NodeName="$HOST" State=RESUME
fi
wait_for "node $HOST" 60 bash -c "sinfo -h -n '$HOST' -o %t | grep -Eq '^(idle|mix|alloc)'"

# --- account and user --------------------------------------------------------------------------------------
if [[ -z $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="drug response pipeline tests" >/dev/null
fi
# root runs the tests; a user who called this through sudo may submit too.
for user in root ${SUDO_USER:-}; do
    if ! sacctmgr -n -P list association user="$user" account="$ACCOUNT" format=user | grep -qx "$user"; then
        sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    fi
done

# --- check: jobs run on both partitions, a GPU request is granted, and accounting records them ---------
cpu_job=$(sbatch --parsable -A "$ACCOUNT" -p "$CPU_PARTITION" -n1 -t 1 -o /dev/null --wrap "srun hostname")
gpu_job=$(sbatch --parsable -A "$ACCOUNT" -p "$GPU_PARTITION" --gpus=1 -t 1 -o /dev/null --wrap "srun hostname")
for job in "$cpu_job" "$gpu_job"; do
    wait_for "accounting of job $job" 60 bash -c "sacct -n -X -P -j $job -o State | grep -qx COMPLETED"
done
sacct -n -X -P -j "$gpu_job" -o AllocTRES | grep -q "gres/gpu=1" || die "job $gpu_job ran without its GPU"
log "ready: cluster $CLUSTER, partitions $CPU_PARTITION and $GPU_PARTITION (1 GPU)," \
    "account $ACCOUNT, node $HOST ($cpus CPUs)"
