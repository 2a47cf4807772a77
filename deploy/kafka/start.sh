#!/bin/sh
# Starts a single-node Apache Kafka (KRaft, combined broker and controller) whose clients
# must authenticate with SASL/SCRAM-SHA-512 and are authorized by ACLs (StandardAuthorizer,
# nothing allowed without an ACL). Only the `admin` user is bootstrapped here; the
# one-shot `acls` service (deploy/kafka/acls.sh) adds each service's user and ACLs.
#
# Why a script instead of the image's KAFKA_* variables: in KRaft, SCRAM credentials are
# bootstrapped when the storage is formatted (`kafka-storage.sh format --add-scram`), and
# the image's own start-up offers no way to pass them. Formatting is skipped once the data
# volume holds a formatted log (--ignore-formatted), so restarts keep their data and users.
#
# The controller listener is PLAINTEXT, so the broker talks to its own controller as
# User:ANONYMOUS, which needs CLUSTER_ACTION: it is a super user, and the listener binds to
# 127.0.0.1 so that nothing outside this container can reach it.
#
# Passwords go into JAAS configuration text: use letters and digits only (openssl rand -hex 24).
set -eu
: "${KAFKA_CLUSTER_ID:?}" "${KAFKA_ADMIN_PASSWORD:?}"

umask 077
CONFIG=/tmp/rollwatch-kafka/server.properties
CLIENT=/tmp/rollwatch-kafka/admin.properties
mkdir -p /tmp/rollwatch-kafka

cat > "$CONFIG" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
controller.listener.names=CONTROLLER
listeners=SASL_PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=SASL_PLAINTEXT://kafka:9092
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:ANONYMOUS
log.dirs=/var/lib/kafka/data
num.partitions=8
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

cat > "$CLIENT" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
EOF

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
  --cluster-id "$KAFKA_CLUSTER_ID" --config "$CONFIG" \
  --add-scram "SCRAM-SHA-512=[name=admin,password=${KAFKA_ADMIN_PASSWORD}]"

exec /opt/kafka/bin/kafka-server-start.sh "$CONFIG"
