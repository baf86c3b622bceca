#!/bin/bash
# The lab guide's steps over SSH, scripted (benchmarks/bench_testbed_up.py runs it on the
# testbed's control side; its docstring lists the steps and the deviations).
#   testbed_guide.sh run     the guide, from apt install to `auth enable`; prints
#                            "phase NAME EPOCH" after install, pki, started and auth
#   testbed_guide.sh check   (after run) auth status as root, endpoint health --cluster
# Arguments come in the environment: KEY, KNOWN (ssh identity and known_hosts), CTL (ssh
# control socket dir), PASSWORD (etcd root's), HOSTS and IPS (space-separated, same order).
set -euo pipefail
read -r -a hosts <<< "$HOSTS"
read -r -a ips <<< "$IPS"
first=${hosts[0]} first_ip=${ips[0]}
opts=(-i "$KEY" -o IdentitiesOnly=yes -o "UserKnownHostsFile=$KNOWN" -o BatchMode=yes
      -o StrictHostKeyChecking=yes -o LogLevel=ERROR -o User=admin
      -o ControlMaster=auto -o "ControlPath=$CTL/%h" -o ControlPersist=300)
on() { local h=$1; shift; ssh "${opts[@]}" "$h" "$@"; }
cert=/etc/dcs/cert
ctl="ETCDCTL_API=3 ETCDCTL_CACERT=$cert/ca.crt ETCDCTL_CERT=$cert/$first.crt"
ctl+=" ETCDCTL_KEY=$cert/$first.key"

if [ "${1:-}" = check ]; then
  printf '%s\n' "$PASSWORD" | on "$first" "read -r pw; export $ctl ETCDCTL_ENDPOINTS=https://127.0.0.1:2379
    etcdctl --user root:\$pw auth status; etcdctl --user root:\$pw endpoint health --cluster"
  exit 0
fi
at_once() {  # run "$@" HOST IP for every host in parallel; fail if any failed
  local pids=() i
  for i in "${!hosts[@]}"; do "$@" "${hosts[$i]}" "${ips[$i]}" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i"; done
}
cluster=""
for i in "${!hosts[@]}"; do cluster+="${cluster:+,}${hosts[$i]}=https://${ips[$i]}:2380"; done
endpoints=""
for ip in "${ips[@]}"; do endpoints+="${endpoints:+,}https://$ip:2379"; done

install_node() {  # [all nodes] Installation and initial configuration; etcd configuration
  local h=$1 ip=$2
  on "$h" 'sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-client etcd-server >/dev/null && sudo apt-get clean'
  on "$h" 'sudo systemctl stop etcd'
  {
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s.patroni.mydomain\t%s\n\n' "$h" "$h"
    for i in "${!hosts[@]}"; do
      printf '%s  %s.patroni.mydomain  %s\n' "${ips[$i]}" "${hosts[$i]}" "${hosts[$i]}"
    done
  } | on "$h" 'sudo tee /etc/hosts >/dev/null'
  on "$h" 'sudo gpasswd -a "$(whoami)" etcd >/dev/null'
  ssh "${opts[@]}" -O exit "$h" 2>/dev/null  # the guide's logout: the new group at next login
  on "$h" 'sudo mkdir -pm 0770 /etc/dcs/cert && sudo chmod 0770 /etc/dcs'
  cat <<EOF | on "$h" 'sudo tee /etc/dcs/etcd >/dev/null'
ETCD_NAME='$h'
ETCD_DATA_DIR='/var/lib/etcd'
ETCD_LISTEN_CLIENT_URLS='https://0.0.0.0:2379'
ETCD_ADVERTISE_CLIENT_URLS='https://$ip:2379'
ETCD_LISTEN_PEER_URLS='https://0.0.0.0:2380'
ETCD_INITIAL_ADVERTISE_PEER_URLS='https://$ip:2380'
ETCD_INITIAL_CLUSTER='$cluster'
ETCD_INITIAL_CLUSTER_STATE='new'
ETCD_INITIAL_CLUSTER_TOKEN='etcd-cluster-0'
ETCD_CERT_FILE='/etc/dcs/cert/$h.crt'
ETCD_KEY_FILE='/etc/dcs/cert/$h.key'
ETCD_TRUSTED_CA_FILE='/etc/dcs/cert/ca.crt'
ETCD_CLIENT_CERT_AUTH='true'
ETCD_PEER_CERT_FILE='/etc/dcs/cert/$h.crt'
ETCD_PEER_KEY_FILE='/etc/dcs/cert/$h.key'
ETCD_PEER_TRUSTED_CA_FILE='/etc/dcs/cert/ca.crt'
ETCD_PEER_CLIENT_CERT_AUTH='true'
EOF
  on "$h" 'sudo ln -sf /etc/dcs/etcd /etc/default/etcd'
}
at_once install_node
echo "phase install $EPOCHREALTIME"

# [dcs-00] TLS: the CA and dcs-00's own certificate
on "$first" "sudo openssl genrsa -out /etc/dcs/cert/ca.key 4096 2>/dev/null"
on "$first" "sudo openssl req -x509 -new -nodes -key /etc/dcs/cert/ca.key -subj /CN=dcs-ca -days 3650 -out /etc/dcs/cert/ca.crt"
on "$first" "sudo openssl genrsa -out /etc/dcs/cert/$first.key 4096 2>/dev/null"
on "$first" "sudo openssl req -new -key /etc/dcs/cert/$first.key -subj /CN=$first -out /etc/dcs/cert/$first.csr"
printf 'subjectAltName = @alt_names\n\n[alt_names]\nIP.1 = %s\nIP.2 = 127.0.0.1\nDNS.1 = localhost\nDNS.2 = %s\nDNS.3 = %s.patroni.mydomain\n' \
  "$first_ip" "$first" "$first" | on "$first" "sudo tee /etc/dcs/cert/$first.ext >/dev/null"
on "$first" "sudo openssl x509 -req -in /etc/dcs/cert/$first.csr -CA /etc/dcs/cert/ca.crt -CAkey /etc/dcs/cert/ca.key -CAcreateserial -extfile /etc/dcs/cert/$first.ext -days 3650 -out /etc/dcs/cert/$first.crt 2>/dev/null"
on "$first" "sudo bash -c 'chmod 0600 /etc/dcs/cert/ca.key && chmod 0640 /etc/dcs/cert/*.crt /etc/dcs/cert/$first.key && chown -R etcd:etcd /etc/dcs'"

# [dcs-00] etcd-sign-node.sh 'dcs-01:192.168.56.11 dcs-02:192.168.56.12'
for i in "${!hosts[@]}"; do
  [ "$i" -eq 0 ] && continue
  name=${hosts[$i]} ip=${ips[$i]} dir=/tmp/cert/${hosts[$i]}
  on "$first" "mkdir -p $dir && openssl genrsa -out $dir/$name.key 4096 2>/dev/null"
  on "$first" "openssl req -new -key $dir/$name.key -out $dir/$name.csr -subj /CN=$name"
  printf '[v3_req]\nsubjectAltName = @alt_names\nextendedKeyUsage = serverAuth,clientAuth\n\n[alt_names]\nDNS.1 = %s\nDNS.2 = %s.patroni.mydomain\nIP.1  = %s\nIP.2  = 127.0.0.1\n' \
    "$name" "$name" "$ip" | on "$first" "cat > $dir/$name.ext"
  on "$first" "sudo openssl x509 -req -in $dir/$name.csr -CA /etc/dcs/cert/ca.crt -CAkey /etc/dcs/cert/ca.key -CAcreateserial -out $dir/$name.crt -days 365 -extensions v3_req -extfile $dir/$name.ext 2>/dev/null"
  on "$first" "sudo cp /etc/dcs/cert/ca.crt $dir/ && sudo chown -R \$(whoami): $dir && tar -C $dir -cf /tmp/$name.tar $name.crt $name.key ca.crt"
  scp -q -O -3 "${opts[@]}" "$first:/tmp/$name.tar" "$name:/tmp/"
  on "$name" "sudo tar -xf /tmp/$name.tar -C /etc/dcs/cert/"
  on "$name" "sudo bash -c 'chmod 0640 /etc/dcs/cert/ca.crt /etc/dcs/cert/$name.crt /etc/dcs/cert/$name.key && chmod 0750 /etc/dcs/cert /etc/dcs && chown -R etcd:etcd /etc/dcs'"
done
on "$first" "rm -fr /tmp/cert"
echo "phase pki $EPOCHREALTIME"

# [all nodes] start etcd again
restart() { on "$1" 'sudo systemctl restart etcd'; }
at_once restart
ctl+=" ETCDCTL_ENDPOINTS=$endpoints"
tries=0
until on "$first" "$ctl etcdctl endpoint health >/dev/null 2>&1"; do
  tries=$((tries + 1)); [ "$tries" -lt 300 ] || { echo "never healthy" >&2; exit 1; }
  sleep 0.1
done
echo "phase started $EPOCHREALTIME"

# [dcs-00] Authentication
on "$first" "$ctl etcdctl role add root >/dev/null"
on "$first" "$ctl etcdctl role grant-permission root --prefix=true readwrite / >/dev/null"
printf '%s\n' "$PASSWORD" | on "$first" "$ctl etcdctl user add root --interactive=false >/dev/null"
on "$first" "$ctl etcdctl user grant-role root root >/dev/null"
on "$first" "$ctl etcdctl auth enable >/dev/null"
echo "phase auth $EPOCHREALTIME"
