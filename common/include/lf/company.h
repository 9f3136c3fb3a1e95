/* lf/company.h - the company key: one identity for the many ways a company is written.
 *
 * Used for known-customer matching and sticky owners only, never to merge leads (dedup is
 * per person). The company as typed is stored unchanged next to its key. */
#ifndef LF_COMPANY_H
#define LF_COMPANY_H

#include <stddef.h>
#include <unitypes.h>

#include "lf/db.h"

/* Buffer size that always suffices for a key (a key is never longer than the company
   name, which lf_lead_canonical caps at 200 characters). */
#define LF_COMPANY_KEY_SIZE 1024

/* Writes the key of `company` into `out`:
 * - the text rule of lf_norm_text (NFKC: full-width letters, digits and brackets become
 *   half-width), traditional Chinese to simplified (ICU's "Traditional-Simplified"
 *   transliterator, compiled in: lf_company_simplify_char), lower case;
 * - a branch is its parent: "…分公司", "…办事处", "…代表处", "… branch" lose that word
 *   and the city before it;
 * - legal forms at the end, repeatedly: 股份有限公司, 有限责任公司, 有限公司, 集团,
 *   公司, Co., Ltd., Limited, Inc., LLC, GmbH, Corp., AG, PLC, S.A., Pte, Pty …;
 * - a province or city in brackets anywhere ("(上海)", "（中国）", "(Shanghai)") or in
 *   front ("上海", "上海市", "广东省") when at least four characters are left after it
 *   (so 上海银行 and 北京银行 stay two banks);
 * - a leading English "The" dropped ("The Boeing Company" is Boeing);
 * - spaces and punctuation removed.
 * 华东医疗器械(上海)有限公司, 上海华东医疗器械有限公司 and 華東醫療器械有限公司 all give
 * "华东医疗器械". When nothing would be left ("有限公司"), the key is the folded name
 * itself. Returns 0, 1 when the company is empty (out ""), -1 when the text is not valid
 * UTF-8, too long for `outsz`, or ICU fails (out ""; *why set when not NULL). */
int lf_company_key(const char *company, char *out, size_t outsz, const char **why);

/* The simplified form of one code point as ICU's "Traditional-Simplified" transliterator
 * gives it (the code point itself when ICU leaves it alone). */
ucs4_t lf_company_simplify_char(ucs4_t uc);

/* Gives every lead with a company and no company_key its key, and re-keys customers still
 * keyed by the old rule ("company:" + the lower-cased name). For leadflow-migrate, after
 * the migrations; safe to run again (only rows that need it are touched). Returns the
 * number of leads keyed, or -1 (logged) when the database fails. */
long lf_company_backfill(lf_db_t *db);

#endif
