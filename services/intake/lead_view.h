/* lead_view.h - the lead as the API shows it, as the arguments of one SQL
 * json_build_object() over `l`, a row of leads. GET /v1/leads/{id} adds the timeline;
 * the lists (GET /v1/leads, GET /v1/pool) show exactly this. One definition, so a field
 * added here shows everywhere. */
#ifndef LF_INTAKE_LEAD_VIEW_H
#define LF_INTAKE_LEAD_VIEW_H

#define LF_LEAD_VIEW_FIELDS                                                              \
    " 'id', l.id, 'channel', l.channel, 'source', l.source, 'name', l.name,"             \
    " 'company', l.company, 'email', l.email, 'phone', l.phone,"                         \
    " 'phone_type', l.phone_type, 'phone_country', l.phone_country, 'flags', l.flags,"   \
    " 'budget', CASE WHEN l.budget_min IS NULL AND l.budget_max IS NULL THEN NULL"       \
    "   ELSE json_build_object('min', l.budget_min, 'max', l.budget_max,"                \
    "   'currency', l.currency, 'raw', l.budget_raw) END,"                               \
    " 'urgency', l.urgency, 'decision_maker', l.decision_maker, 'region', l.region,"     \
    " 'region_raw', coalesce(l.region_raw, l.region), 'industry', l.industry,"           \
    " 'industry_raw', coalesce(l.industry_raw, l.industry),"                             \
    " 'need', l.need, 'external_id', l.external_id,"                                     \
    " 'extra', l.extra, 'created_at', lf_rfc3339(l.created_at),"                         \
    " 'updated_at', lf_rfc3339(l.updated_at),"                                           \
    " 'grade', l.grade, 'score', l.score,"                                               \
    " 'score_breakdown', coalesce(l.score_breakdown,"                                    \
    "   lf_score_breakdown(l.breakdown_dict, l.breakdown_codes), '[]'::jsonb),"          \
    " 'team', l.team, 'owner', l.owner, 'assignment_reason', l.assignment_reason,"       \
    " 'queue', l.queue, 'pool_reason', l.pool_reason,"                                   \
    " 'pool_since', lf_rfc3339(l.pool_since), 'reactivated_from', l.reactivated_from,"   \
    " 'stage', l.stage, 'stage_changed_at', lf_rfc3339(l.stage_changed_at),"             \
    " 'first_contact_at', lf_rfc3339(l.first_contact_at),"                               \
    " 'amount', l.amount, 'loss_reason', l.loss_reason,"                                 \
    " 'closed_at', lf_rfc3339(l.closed_at), 'customer_id', l.customer_id"

#endif
