-- A version per provider, raised by every change. The service keeps the providers it books for in
-- memory and plans a booking (zone, length, working hours) from that copy; the booking statement
-- inserts only while the provider is still that version and active, so reading the provider is not
-- a round trip of its own, and a change made through any instance is never booked past.
ALTER TABLE providers ADD COLUMN version bigint NOT NULL DEFAULT 1;
