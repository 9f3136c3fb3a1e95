-- 0036_keepalive_links: what links deals of one customer across a loss
-- (docs/pipeline.md#reactivation).
--   reactivated_from (0025)  a reactivated opportunity's lost deal;
--   lost_deal                a new inquiry's link to the last deal its customer lost
--                            (the customer came back by themselves).
ALTER TABLE leads ADD COLUMN lost_deal text;
CREATE INDEX leads_reactivated_from ON leads (reactivated_from)
    WHERE reactivated_from IS NOT NULL;
CREATE INDEX leads_lost_deal ON leads (lost_deal) WHERE lost_deal IS NOT NULL;
-- Lost deals by customer key, for the link above.
CREATE INDEX leads_lost_company ON leads (company_key, closed_at)
    WHERE loss_reason IS NOT NULL AND closed_at IS NOT NULL;
