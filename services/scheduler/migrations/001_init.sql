-- The service's schema starts here; later migrations add to it, never edit an applied one.
CREATE TABLE IF NOT EXISTS service_info (key text PRIMARY KEY, value text NOT NULL);
