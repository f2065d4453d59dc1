#!/usr/bin/env bash
# One-shot Kafka set-up of the production twin (docker-compose.yml, service kafka-init): SCRAM
# users, the pipeline's topics (replication 3, min.insync.replicas 2 on the three brokers) and
# the ACLs. Runs in kafka-1's network namespace and talks to its BROKER listener as the super
# user `admin` (SASL/PLAIN).
# Safe to run again: users are altered, topics created if missing, ACLs added idempotently.
#
# Who may do what (everything else is denied: allow.everyone.if.no.acl.found=false):
#   producer-report / producer-form / producer-alert  write their one topic (report,
#                                                      form-submission, alert) and nothing else
#   govstream-worker   reads the three raw topics; writes dead-letter; reads and writes its own
#                      topics (report-routed, govstream-* changelogs); consumer groups govstream*
#   schema-registry    its _schemas topic and its group
# Nobody but the worker reads a raw topic or the dead-letter topic.
set -euo pipefail

: "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_WORKER_PASSWORD:?}" "${KAFKA_REGISTRY_PASSWORD:?}"
: "${KAFKA_PRODUCER_REPORT_PASSWORD:?}" "${KAFKA_PRODUCER_FORM_PASSWORD:?}"
: "${KAFKA_PRODUCER_ALERT_PASSWORD:?}"
BIN=/opt/kafka/bin
BOOT=localhost:9094
CONF=$(mktemp)
trap 'rm -f "$CONF"' EXIT
chmod 600 "$CONF"
cat >"$CONF" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
PROPS

scram_user() {  # name password
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOT" --command-config "$CONF" --alter \
    --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$2]"
}
acl() {  # kafka-acls.sh arguments after --add
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOT" --command-config "$CONF" --add "$@"
}

scram_user govstream-worker "$KAFKA_WORKER_PASSWORD"
scram_user schema-registry "$KAFKA_REGISTRY_PASSWORD"
scram_user producer-report "$KAFKA_PRODUCER_REPORT_PASSWORD"
scram_user producer-form "$KAFKA_PRODUCER_FORM_PASSWORD"
scram_user producer-alert "$KAFKA_PRODUCER_ALERT_PASSWORD"

for topic in report form-submission alert dead-letter report-routed; do
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOT" --command-config "$CONF" --create \
    --if-not-exists --topic "$topic" --partitions "${KAFKA_NUM_PARTITIONS:-6}" \
    --replication-factor "${KAFKA_REPLICATION_FACTOR:-3}" \
    --config "min.insync.replicas=${KAFKA_MIN_INSYNC_REPLICAS:-2}"
done

# producers: their own topic, write only
acl --allow-principal User:producer-report --operation Write --operation Describe --topic report
acl --allow-principal User:producer-form --operation Write --operation Describe \
  --topic form-submission
acl --allow-principal User:producer-alert --operation Write --operation Describe --topic alert

# the worker
for topic in report form-submission alert; do
  acl --allow-principal User:govstream-worker --operation Read --operation Describe --topic "$topic"
done
acl --allow-principal User:govstream-worker --operation Write --operation Describe \
  --topic dead-letter
acl --allow-principal User:govstream-worker --operation All --topic report-routed
acl --allow-principal User:govstream-worker --operation All --resource-pattern-type prefixed \
  --topic govstream-
acl --allow-principal User:govstream-worker --operation All --resource-pattern-type prefixed \
  --group govstream
acl --allow-principal User:govstream-worker --operation Describe --operation IdempotentWrite \
  --cluster

# the schema registry's store
acl --allow-principal User:schema-registry --operation All --topic _schemas
acl --allow-principal User:schema-registry --operation All --resource-pattern-type prefixed \
  --group schema-registry
acl --allow-principal User:schema-registry --operation Describe --cluster
echo "kafka-init: users, topics and ACLs in place"
