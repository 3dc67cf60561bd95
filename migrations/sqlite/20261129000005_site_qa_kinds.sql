-- A site's own QA pairs may be decline examples (questions the bot must not answer: when a
-- message is closest to one, the bot answers nothing and hands over), as pack pairs may, and
-- may list the entities their answers use (`corpus/README.md`), such as `order_no`, so that a
-- bare number in the message reads as an order number.
ALTER TABLE qa_pairs ADD COLUMN decline INTEGER NOT NULL DEFAULT 0;
ALTER TABLE qa_pairs ADD COLUMN entities TEXT NOT NULL DEFAULT '[]'; -- JSON array
