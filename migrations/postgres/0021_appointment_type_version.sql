-- An appointment type's version, raised by every change: a booking planned from a type checks in
-- its statement that the type is still that version (locked in key-share mode), so a change that
-- has answered stops every booking planned from the type before it. Adding a column with a
-- constant default rewrites nothing. The release before this one runs on it unchanged (it does not
-- raise the version, so its changes are not seen by bookings of this release during a rollout).
ALTER TABLE appointment_types ADD COLUMN version bigint NOT NULL DEFAULT 0;
