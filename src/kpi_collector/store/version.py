"""The store's schema version, readable without importing SQLAlchemy (`store.direct` checks
it); `store.schema` holds the migrations and checks that they reach exactly this version."""

#: the number of migrations in `store.schema.MIGRATIONS`: add one with each new migration
SCHEMA_VERSION = 13
