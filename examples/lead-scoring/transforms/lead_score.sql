-- lead_score.sql: scores every Salesforce lead from 0 to 100, into the table lead_reverse
-- ("Id", lead_score) that the write-back sends to Lead.LeadScore__c (a Number(3, 0)).
--
-- Inputs (columns as the extracts create them):
--   sf_lead           Salesforce Lead, one column per field, named exactly like the field
--                     ("Id", "Email", "Status", "LeadSource", "NumberOfEmployees", "IsDeleted",
--                     "IsConverted", ...).
--   athena_customers  the Athena query result: email, lifetime_value, order_count,
--                     last_order_at (timestamp without time zone), segment.
--
-- THE SCORING RULES (exact: a score can be worked out by hand from them)
--
--   Which leads: every row of sf_lead except
--     - deleted leads ("IsDeleted" is true, NULL counts as not deleted), and
--     - converted leads ("IsConverted" is true, NULL counts as not converted): Salesforce
--       refuses every update of a converted lead (CANNOT_UPDATE_CONVERTED_LEAD), whatever
--       status the org gives it on conversion ('Closed - Converted' by default).
--
--   The matching customer: the athena_customers rows whose email equals the lead's "Email",
--   both trimmed of surrounding spaces and compared in lower case. Rows with a NULL or blank
--   email never match, and a lead with a NULL or blank "Email" has no customer. When several rows
--   match they count as one customer: lifetime_value and order_count are summed (NULL counts
--   as 0), last_order_at is the latest one (NULLs ignored), and the segment rule holds when
--   any one row's segment is 'enterprise' (trimmed, any case).
--
--   The reference date is the fixed date 2025-06-01 (not today: the demo and the tests
--   must give the same scores on any day). To score against today in production, replace
--   DATE '2025-06-01' below with current_date.
--
--   Points, added up:
--     base                                               +10  (every lead)
--     customer      a matching customer exists           +20
--     value         lifetime_value >= 10000              +25
--                   lifetime_value >= 1000 (and < 10000) +15
--                   lifetime_value > 0 (and < 1000)       +5
--     recency       last_order_at on or after 2025-03-03 00:00:00
--                     (90 days before the reference date, later dates count too)  +15
--                   else on or after 2024-06-01 00:00:00
--                     (365 days before the reference date)                        +5
--     orders        order_count >= 5                      +5
--     segment       segment is 'enterprise'              +10
--     size          "NumberOfEmployees" >= 1000          +15
--                   "NumberOfEmployees" >= 100 (< 1000)  +10
--                   "NumberOfEmployees" >= 10 (< 100)     +5   (NULL: 0)
--     source        "LeadSource" = 'Partner Referral'    +10
--                   "LeadSource" = 'Web'                  +5
--                   "LeadSource" = 'Purchased List'      -10   (any other value or NULL: 0)
--     status        "Status" = 'Working - Contacted'      +5
--                   "Status" = 'Closed - Not Converted'  -20   (any other value or NULL: 0)
--   Without a matching customer the customer, value, recency, orders and segment rules give 0.
--   String comparisons of "LeadSource" and "Status" are exact (case and spaces matter).
--
--   The score is the sum clamped to 0..100: below 0 becomes 0, above 100 becomes 100.
--
--   Worked example: a 'Web' lead, 'Working - Contacted', 250 employees, whose email matches
--   one customer with lifetime_value 1500.00, order_count 6, last order 2025-05-20 10:00,
--   segment 'Enterprise':
--     10 + 20 + 15 + 15 + 5 + 10 + 10 + 5 + 5 = 95.
--
-- lead_reverse is a table rather than a view: PostgreSQL refuses to change the type of a
-- column a view uses, and the extracts widen column types when Salesforce or Athena do.
-- It is refilled here on every run, inside the transform's transaction. The file has no
-- semicolon except at the end of each statement.

CREATE TABLE IF NOT EXISTS lead_reverse (
  "Id" text PRIMARY KEY,
  lead_score integer NOT NULL CHECK (lead_score BETWEEN 0 AND 100)
);

DELETE FROM lead_reverse;

WITH reference AS (
  SELECT DATE '2025-06-01' AS day
),
customer AS (
  SELECT
    lower(btrim(email)) AS email_key,
    sum(coalesce(lifetime_value, 0)) AS lifetime_value,
    sum(coalesce(order_count, 0)) AS order_count,
    max(last_order_at) AS last_order_at,
    coalesce(bool_or(lower(btrim(segment)) = 'enterprise'), false) AS enterprise
  FROM athena_customers
  WHERE nullif(btrim(email), '') IS NOT NULL
  GROUP BY lower(btrim(email))
),
points AS (
  SELECT
    l."Id",
    10
    + CASE WHEN c.email_key IS NOT NULL THEN 20 ELSE 0 END
    + CASE
        WHEN c.lifetime_value >= 10000 THEN 25
        WHEN c.lifetime_value >= 1000 THEN 15
        WHEN c.lifetime_value > 0 THEN 5
        ELSE 0
      END
    + CASE
        WHEN c.last_order_at >= (r.day - 90)::timestamp THEN 15
        WHEN c.last_order_at >= (r.day - 365)::timestamp THEN 5
        ELSE 0
      END
    + CASE WHEN c.order_count >= 5 THEN 5 ELSE 0 END
    + CASE WHEN c.enterprise THEN 10 ELSE 0 END
    + CASE
        WHEN l."NumberOfEmployees" >= 1000 THEN 15
        WHEN l."NumberOfEmployees" >= 100 THEN 10
        WHEN l."NumberOfEmployees" >= 10 THEN 5
        ELSE 0
      END
    + CASE l."LeadSource"
        WHEN 'Partner Referral' THEN 10
        WHEN 'Web' THEN 5
        WHEN 'Purchased List' THEN -10
        ELSE 0
      END
    + CASE l."Status"
        WHEN 'Working - Contacted' THEN 5
        WHEN 'Closed - Not Converted' THEN -20
        ELSE 0
      END AS total
  FROM sf_lead AS l
  CROSS JOIN reference AS r
  LEFT JOIN customer AS c ON c.email_key = lower(btrim(l."Email"))
  WHERE l."IsDeleted" IS NOT TRUE
    AND l."IsConverted" IS NOT TRUE
)
INSERT INTO lead_reverse ("Id", lead_score)
SELECT "Id", greatest(0, least(100, total))::integer
FROM points;
