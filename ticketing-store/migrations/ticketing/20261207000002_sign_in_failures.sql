-- Failed sign-ins per key (an account, a client address), kept where every auth replica sees
-- them: the key's theoretical arrival time (GCRA) and until when it is refused, in milliseconds
-- since the Unix epoch.
CREATE TABLE sign_in_failures (
    key TEXT PRIMARY KEY,
    tat_ms BIGINT NOT NULL,
    refused_until_ms BIGINT NOT NULL
);
