/* io/config_syntax.c — where and why a config text is not JSON: the line and column
 * (in characters) of cJSON's failure point, and whether it is cJSON's nesting limit
 * or a syntax error; one line through cf_fail. */
#include <string.h>

#include <cjson/cJSON.h>

#include "config_impl.h"

/* 1-based line and column (in characters, not bytes) of text[pos]. */
void cf_line_col(const char *text, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && text[i]; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Bracket depth at text[pos], outside strings: tells a nesting-limit refusal
 * from a syntax error (cJSON reports both as a failed parse). */
static int depth_at(const char *text, size_t pos)
{
    int d = 0, in_str = 0;
    for (size_t i = 0; i < pos && text[i]; i++) {
        char ch = text[i];
        if (in_str) {
            if (ch == '\\' && text[i + 1])
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"')
            in_str = 1;
        else if (ch == '{' || ch == '[')
            d++;
        else if (ch == '}' || ch == ']')
            d--;
    }
    return d;
}

int cf_parse_error(ctx *x, const char *text, size_t len, size_t pos)
{
    int line, col;
    if (pos > len) pos = len;
    cf_line_col(text, pos, &line, &col);
    if (depth_at(text, pos) >= CJSON_NESTING_LIMIT)
        return cf_fail(x, "JSON nested deeper than %d levels at line %d, column %d",
                       CJSON_NESTING_LIMIT, line, col);
    if (pos >= len)
        return cf_fail(x, "malformed JSON at line %d, column %d: unexpected end of text", line,
                       col);
    char near[128], frag[41];
    size_t fl = strcspn(text + pos, "\r\n");
    if (fl > 24) fl = 24;
    memcpy(frag, text + pos, fl);
    frag[fl] = 0;
    cf_escape(near, sizeof near, frag, 24);
    return cf_fail(x, "malformed JSON at line %d, column %d, near \"%s\"", line, col, near);
}
