-- The user a build's steps act for: the user, project and roles of the CreateServers call that
-- accepted it (the principal the RPC pipeline authenticated). The conductor calls its peers with
-- its own credential and this user as acting-for, so the network-adapter applies the user's
-- visibility itself. caller_roles NULL: a service accepted the build as itself, or the build was
-- accepted before this column existed; its steps act as the conductor itself.
ALTER TABLE server_builds
  ADD COLUMN caller_user_id text NOT NULL DEFAULT '',
  ADD COLUMN caller_project_id text NOT NULL DEFAULT '',
  ADD COLUMN caller_roles text[];
ALTER TABLE server_builds
  ALTER COLUMN caller_user_id SET STATISTICS 0,
  ALTER COLUMN caller_project_id SET STATISTICS 0,
  ALTER COLUMN caller_roles SET STATISTICS 0;
