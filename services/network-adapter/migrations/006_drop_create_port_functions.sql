-- CreatePort's common case is now a statement the adapter builds from the same rule definitions
-- as its transactional path (src/core/port-statements.ts) and runs prepared per connection, as
-- it does the deferred port and first-bind statements: the PL/pgSQL functions of migrations 002,
-- 003 and 005 kept a second copy of those rules and are no longer called.
DROP FUNCTION IF EXISTS create_ports_auto(uuid[], uuid[], text[], text[], text[], text[], text[], text[], boolean[], text[]);
DROP FUNCTION IF EXISTS create_port_auto(uuid, uuid, text, text, text, text, text, text, boolean, text);
