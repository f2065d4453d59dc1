#!/bin/sh
# Confluent Schema Registry with HTTP basic authentication (Confluent docs: "Configure the REST
# API for basic HTTP authentication": authentication.method=BASIC, a JAAS realm with Jetty's
# PropertyFileLoginModule). The password file is written here from the environment, so no
# secret is in the image or the repository. Two users:
#   govstream (role admin)  — the worker and the upstream producers: read, register;
#   reader    (role reader) — operators' read-only tools.
# Every request needs credentials, so nobody unauthenticated reads, registers or deletes a
# subject. (Per-method authorization — reads for one role, writes for another — needs
# Confluent's RBAC plugin, which is not part of the community image.)
set -eu
: "${SCHEMA_REGISTRY_PASSWORD:?set SCHEMA_REGISTRY_PASSWORD}"
: "${SCHEMA_REGISTRY_READER_PASSWORD:?set SCHEMA_REGISTRY_READER_PASSWORD}"
dir=/tmp/schema-registry-auth
mkdir -p "$dir"
umask 077
printf 'govstream: %s,admin\nreader: %s,reader\n' \
  "$SCHEMA_REGISTRY_PASSWORD" "$SCHEMA_REGISTRY_READER_PASSWORD" > "$dir/passwords"
cat > "$dir/jaas.conf" <<JAAS
SchemaRegistry {
  org.eclipse.jetty.jaas.spi.PropertyFileLoginModule required
  file="$dir/passwords"
  debug="false";
};
JAAS
export SCHEMA_REGISTRY_OPTS="-Djava.security.auth.login.config=$dir/jaas.conf"
exec /etc/confluent/docker/run
