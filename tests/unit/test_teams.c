/* test_teams.c - team settings, team rules and vocabularies of config/routing.json. */
#include <criterion/criterion.h>
#include <string.h>

#include "lf/teams.h"

static lf_teams_t *s_load(const char *json) {
    json_error_t jerr;
    json_t *cfg = json_loads(json, 0, &jerr);
    cr_assert(cfg, "%s: %s", json, jerr.text);
    char err[512] = "";
    lf_teams_t *t = lf_teams_from_json(cfg, "config/calendars", err, sizeof err);
    json_decref(cfg);
    cr_assert(t, "%s", err);
    return t;
}

static void s_bad(const char *json, const char *needle) {
    json_error_t jerr;
    json_t *cfg = json_loads(json, 0, &jerr);
    cr_assert(cfg, "%s: %s", json, jerr.text);
    char err[512] = "";
    lf_teams_t *t = lf_teams_from_json(cfg, "config/calendars", err, sizeof err);
    json_decref(cfg);
    cr_expect_null(t, "%s was accepted", json);
    cr_expect(strstr(err, needle), "%s: error \"%s\" lacks \"%s\"", json, err, needle);
    lf_teams_destroy(&t);
}

static const char *s_str(const char *s) {
    return s ? s : "(null)";
}

Test(teams, shipped_configuration_maps_jiangsu_to_the_east_team) {
    char err[512] = "";
    lf_teams_t *t = lf_teams_load("config", err, sizeof err);
    cr_assert(t, "%s", err);
    static const char *const east[] = {"江苏",       "江苏省",     "华东",     "华东区",
                                       "East China", "east china", " 上海市 ", "浙江",
                                       "east",       "杭州"};
    for (size_t i = 0; i < sizeof east / sizeof *east; i++)
        cr_expect_str_eq(s_str(lf_teams_region(t, east[i])), "east", "%s", east[i]);
    cr_expect_str_eq(s_str(lf_teams_region(t, "广东")), "south");
    cr_expect_null(lf_teams_region(t, "火星"));
    cr_expect_null(lf_teams_region(t, ""));
    cr_expect_null(lf_teams_region(t, NULL));
    cr_expect_str_eq(s_str(lf_teams_industry(t, "医疗器械")), "medical");
    cr_expect_str_eq(s_str(lf_teams_industry(t, "医疗")), "medical");
    cr_expect_str_eq(s_str(lf_teams_route(t, "east", "medical", "web_form", NULL)),
                     "east");
    cr_expect_str_eq(s_str(lf_teams_route(t, "northeast", NULL, NULL, NULL)), "north");
    cr_expect_null(lf_teams_route(t, "central", NULL, NULL, NULL), "no default team");
    const lf_team_t *e = lf_teams_get(t, "east");
    cr_expect_str_eq(e->name, "east");
    cr_expect_str_eq(s_str(e->manager), "li.ming");
    cr_expect(e->calendar);
    cr_expect_eq(e->auto_route[LF_POOL_NO_ELIGIBLE_REP], 1);
    cr_expect_eq(e->auto_route[LF_POOL_RECYCLED], 0);
    cr_expect_eq(e->claim_daily_limit, 20);
    cr_expect_eq(e->pool_sla_secs, 4 * 3600);
    const lf_team_t *k = lf_teams_get(t, "key_accounts");
    cr_expect_eq(k->claim_daily_limit, 5, "own setting");
    cr_expect_eq(k->claim_cooldown_secs, 72 * 3600, "inherited");
    cr_expect_eq(k->on_deactivate, LF_DEACT_KEEP);
    cr_expect_eq(k->fallback_notice, 1);
    const lf_team_t *u = lf_teams_get(t, "no-such-team");
    cr_expect_str_eq(u->name, "", "an unlisted team has the defaults");
    cr_expect_eq(u->on_deactivate, LF_DEACT_POOL);
    cr_expect_eq(lf_teams_min_pool_sla(t), 2 * 3600);
    cr_expect(lf_teams_any_auto_route(t, LF_POOL_OWNER_LEFT));
    cr_expect(!lf_teams_any_auto_route(t, LF_POOL_RELEASED));
    lf_teams_destroy(&t);
    lf_teams_destroy(&t);
}

Test(teams, first_matching_rule_wins_then_the_default_team) {
    lf_teams_t *t = s_load(
        "{\"default_team\": \"general\","
        " \"team_rules\": ["
        "  {\"when\": {\"industry\": \"medical\", \"region\": [\"east\", \"north\"]},"
        "   \"team\": \"med\"},"
        "  {\"when\": {\"channel\": [\"partner\"]}, \"team\": \"partners\"},"
        "  {\"when\": {\"source\": \"expo\"}, \"team\": \"events\"},"
        "  {\"when\": {\"region\": \"east\"}, \"team\": \"east\"}],"
        " \"teams\": {\"med\": {\"pool\": {\"auto_route\": {\"recycled\": true}}}}}");
    cr_expect_str_eq(s_str(lf_teams_route(t, "east", "medical", "partner", NULL)), "med");
    cr_expect_str_eq(s_str(lf_teams_route(t, "east", "software", "partner", NULL)),
                     "partners");
    cr_expect_str_eq(s_str(lf_teams_route(t, "east", NULL, "api", "expo")), "events");
    cr_expect_str_eq(s_str(lf_teams_route(t, "east", NULL, "api", NULL)), "east");
    cr_expect_str_eq(s_str(lf_teams_route(t, NULL, NULL, NULL, NULL)), "general");
    cr_expect_eq(lf_teams_get(t, "med")->auto_route[LF_POOL_RECYCLED], 1);
    cr_expect_eq(lf_teams_get(t, "med")->auto_route[LF_POOL_NO_ELIGIBLE_REP], 1);
    cr_expect_eq(lf_teams_get(t, "east")->auto_route[LF_POOL_RECYCLED], 0);
    lf_teams_destroy(&t);
}

Test(teams, pool_reason_names_round_trip) {
    for (int r = 0; r < LF_POOL_REASONS; r++)
        cr_expect_eq(lf_pool_reason_parse(lf_pool_reason_name((lf_pool_reason_t)r)), r);
    cr_expect_eq(lf_pool_reason_parse("queue"), -1);
    cr_expect_eq(lf_pool_reason_parse(NULL), -1);
}

Test(teams, bad_settings_are_refused_with_the_key) {
    s_bad(
        "{\"vocabularies\": {\"region\": {\"east\": [\"上海\"], \"south\": [\"上海\"]}}}",
        "already maps to east");
    s_bad("{\"vocabularies\": {\"city\": {}}}", "vocabularies.city");
    s_bad("{\"team_rules\": [{\"when\": {\"budget\": \"big\"}, \"team\": \"x\"}]}",
          "team_rules[0].when.budget");
    s_bad("{\"team_rules\": [{\"when\": {\"region\": []}, \"team\": \"x\"}]}",
          "team_rules[0].when.region");
    s_bad("{\"team_rules\": [{\"when\": {}}]}", "team_rules[0]");
    s_bad("{\"teams\": {\"e\": {\"pool\": {\"auto_route\": {\"lost\": true}}}}}",
          "teams.e.pool.auto_route.lost");
    s_bad("{\"teams\": {\"e\": {\"pool\": {\"claim_daily_limit\": -1}}}}",
          "teams.e.pool.claim_daily_limit");
    s_bad("{\"teams\": {\"e\": {\"pool\": {\"wait\": 1}}}}", "teams.e.pool.wait");
    s_bad("{\"teams\": {\"e\": {\"on_deactivate\": \"delete\"}}}",
          "teams.e.on_deactivate");
    s_bad("{\"teams\": {\"e\": {\"calendar\": \"mars\"}}}", "no calendar named \"mars\"");
    s_bad("{\"teams\": {\"e\": {\"calendar\": {\"hours\": [\"9\", \"18\"]}}}}",
          "teams.e.calendar: calendar.hours");
    s_bad("{\"default_pool\": {\"sla_business_hours\": \"4h\"}}",
          "default.pool.sla_business_hours");
}
