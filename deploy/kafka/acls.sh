#!/bin/sh
# One-shot set-up run by the `acls` service as the broker's admin (a super user): creates or
# updates the SCRAM-SHA-512 user of every rollwatch service, then adds the ACLs listed in
# /opt/rollwatch/acls.txt. Both steps are idempotent (re-adding an ACL or a password is a
# no-op or an update), so the service runs at every `docker compose up`; it never removes an
# ACL: drop stale ones by hand with `kafka-acls.sh --remove`.
#
# Why users here and not in start.sh: SCRAM users given to `kafka-storage.sh format` exist
# only on a fresh data volume; kafka-configs.sh adds them (and rotates passwords) on a
# running cluster too.
set -eu
: "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_WORKER_PASSWORD:?}" "${KAFKA_FLAGSTORE_PASSWORD:?}" \
  "${KAFKA_RELEASE_PASSWORD:?}" "${KAFKA_TRAFFIC_PASSWORD:?}"

BOOTSTRAP=kafka:9092
ACLS=/opt/rollwatch/acls.txt
umask 077
CLIENT=$(mktemp)
trap 'rm -f "$CLIENT"' EXIT
cat > "$CLIENT" <<CONF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
CONF

user() {
  /opt/kafka/bin/kafka-configs.sh --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT" \
    --alter --entity-type users --entity-name "$1" --add-config "SCRAM-SHA-512=[password=$2]"
}
user rollwatch-worker "$KAFKA_WORKER_PASSWORD"
user rollwatch-flagstore "$KAFKA_FLAGSTORE_PASSWORD"
user rollwatch-release "$KAFKA_RELEASE_PASSWORD"
user rollwatch-traffic "$KAFKA_TRAFFIC_PASSWORD"

grep -v -e '^#' -e '^[[:space:]]*$' "$ACLS" | while read -r principal operation resource pattern name; do
  /opt/kafka/bin/kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT" \
    --add --allow-principal "User:$principal" --operation "$operation" \
    "--$resource" "$name" --resource-pattern-type "$pattern" > /dev/null
  echo "allowed User:$principal $operation on $resource $pattern $name"
done
