-- How many times each message was claimed. A message sent but whose delivery could not be
-- recorded (the database went away at that moment) comes back when its lease ends and would be
-- sent again and again; counting claims bounds that at MAIL_MAX_ATTEMPTS, after which it is a dead
-- letter (it may have been sent). The count also tells a late dispatcher, whose lease ran out and
-- whose message another has claimed since, that its failure is no longer its to record. The
-- release before this one runs on it unchanged (it neither reads nor counts claims, so both
-- guarantees hold once every instance runs this release).
ALTER TABLE outbox ADD COLUMN claims integer NOT NULL DEFAULT 0;
GRANT UPDATE (claims) ON outbox TO booking_worker;
