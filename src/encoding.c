/*
 * encoding.c -- the input's encoding (--encoding): PostgreSQL's names and aliases for the
 * encodings, which of them pgfeed reads, the check of a buffer for one, and a header line
 * turned into UTF-8 so that mapping.c can match it against the catalog's column names.
 *
 * Leaves UTF-8 itself to parse_utf8.c (pgfeed__utf8_check: the default and its fast path),
 * deciding which bytes to check and the wording of a rejection to the parser, and the
 * conversion of the rows to the server: the sink sets client_encoding around each COPY and
 * the server converts (text and binary COPY alike: textrecv converts from client_encoding).
 *
 * pgfeed reads UTF8 and PostgreSQL's single-byte encodings. In those a byte is one character,
 * valid unless it is 0x00 or a byte PostgreSQL's conversion refuses (WIN1252's 0x81, 0x8D,
 * 0x8F, 0x90 and 0x9D...): encoding_tables.h, generated from the server's own convert_from,
 * holds each one's code points for 0x80..0xFF (0: refused). The other encodings are refused
 * by name with the reason: SJIS, BIG5, GBK, UHC, GB18030, JOHAB and SHIFT_JIS_2004 put ASCII
 * bytes (a backslash, a '|', letters) inside their two-byte characters, where the parser and
 * COPY would see escapes and delimiters; the EUC encodings would need conversion tables for
 * the header that pgfeed does not carry; SQL_ASCII and MULE_INTERNAL name no text encoding.
 * A single-byte check takes 8 ASCII bytes at a time, then a byte at a time through the table.
 * No state; the only allocation is the header's UTF-8 copy, in the caller's buffer.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#include "encoding_tables.h"

#define SHIFTS                                                                                     \
    "Its two-byte characters can have an ASCII second byte (such as a backslash), which would "    \
    "be taken for an escape or a delimiter."
#define EUC    "pgfeed reads UTF8 and the single-byte encodings only."
#define NOTEXT "It names no character set that pgfeed could check."

/* PostgreSQL's encodings (its names, pg_enc2name_tbl), each with iconv's name for hints. */
static const struct pgfeed_encoding encodings[] = {
    {"UTF8", "UTF-8", NULL, NULL},
    {"LATIN1", "ISO-8859-1", sb_latin1, NULL},
    {"LATIN2", "ISO-8859-2", sb_latin2, NULL},
    {"LATIN3", "ISO-8859-3", sb_latin3, NULL},
    {"LATIN4", "ISO-8859-4", sb_latin4, NULL},
    {"LATIN5", "ISO-8859-9", sb_latin5, NULL},
    {"LATIN6", "ISO-8859-10", sb_latin6, NULL},
    {"LATIN7", "ISO-8859-13", sb_latin7, NULL},
    {"LATIN8", "ISO-8859-14", sb_latin8, NULL},
    {"LATIN9", "ISO-8859-15", sb_latin9, NULL},
    {"LATIN10", "ISO-8859-16", sb_latin10, NULL},
    {"ISO_8859_5", "ISO-8859-5", sb_iso_8859_5, NULL},
    {"ISO_8859_6", "ISO-8859-6", sb_iso_8859_6, NULL},
    {"ISO_8859_7", "ISO-8859-7", sb_iso_8859_7, NULL},
    {"ISO_8859_8", "ISO-8859-8", sb_iso_8859_8, NULL},
    {"WIN866", "CP866", sb_win866, NULL},
    {"WIN874", "CP874", sb_win874, NULL},
    {"WIN1250", "WINDOWS-1250", sb_win1250, NULL},
    {"WIN1251", "WINDOWS-1251", sb_win1251, NULL},
    {"WIN1252", "WINDOWS-1252", sb_win1252, NULL},
    {"WIN1253", "WINDOWS-1253", sb_win1253, NULL},
    {"WIN1254", "WINDOWS-1254", sb_win1254, NULL},
    {"WIN1255", "WINDOWS-1255", sb_win1255, NULL},
    {"WIN1256", "WINDOWS-1256", sb_win1256, NULL},
    {"WIN1257", "WINDOWS-1257", sb_win1257, NULL},
    {"WIN1258", "WINDOWS-1258", sb_win1258, NULL},
    {"KOI8R", "KOI8-R", sb_koi8r, NULL},
    {"KOI8U", "KOI8-U", sb_koi8u, NULL},
    {"SJIS", "SHIFT_JIS", NULL, SHIFTS},
    {"SHIFT_JIS_2004", "SHIFT_JISX0213", NULL, SHIFTS},
    {"BIG5", "BIG5", NULL, SHIFTS},
    {"GBK", "GBK", NULL, SHIFTS},
    {"UHC", "CP949", NULL, SHIFTS},
    {"GB18030", "GB18030", NULL, SHIFTS},
    {"JOHAB", "JOHAB", NULL, SHIFTS},
    {"EUC_JP", "EUC-JP", NULL, EUC},
    {"EUC_JIS_2004", "EUC-JISX0213", NULL, EUC},
    {"EUC_CN", "EUC-CN", NULL, EUC},
    {"EUC_KR", "EUC-KR", NULL, EUC},
    {"EUC_TW", "EUC-TW", NULL, EUC},
    {"SQL_ASCII", "ASCII", NULL, NOTEXT},
    {"MULE_INTERNAL", "UTF-8", NULL, NOTEXT},
};

/* PostgreSQL's aliases (encnames.c, pg_encname_tbl), lower case and alphanumeric only. */
static const struct {
    const char *alias, *name;
} aliases[] = {
    {"abc", "WIN1258"},
    {"alt", "WIN866"},
    {"big5", "BIG5"},
    {"euccn", "EUC_CN"},
    {"eucjis2004", "EUC_JIS_2004"},
    {"eucjp", "EUC_JP"},
    {"euckr", "EUC_KR"},
    {"euctw", "EUC_TW"},
    {"gb18030", "GB18030"},
    {"gbk", "GBK"},
    {"iso88591", "LATIN1"},
    {"iso885910", "LATIN6"},
    {"iso885913", "LATIN7"},
    {"iso885914", "LATIN8"},
    {"iso885915", "LATIN9"},
    {"iso885916", "LATIN10"},
    {"iso88592", "LATIN2"},
    {"iso88593", "LATIN3"},
    {"iso88594", "LATIN4"},
    {"iso88595", "ISO_8859_5"},
    {"iso88596", "ISO_8859_6"},
    {"iso88597", "ISO_8859_7"},
    {"iso88598", "ISO_8859_8"},
    {"iso88599", "LATIN5"},
    {"johab", "JOHAB"},
    {"koi8", "KOI8R"},
    {"koi8r", "KOI8R"},
    {"koi8u", "KOI8U"},
    {"latin1", "LATIN1"},
    {"latin10", "LATIN10"},
    {"latin2", "LATIN2"},
    {"latin3", "LATIN3"},
    {"latin4", "LATIN4"},
    {"latin5", "LATIN5"},
    {"latin6", "LATIN6"},
    {"latin7", "LATIN7"},
    {"latin8", "LATIN8"},
    {"latin9", "LATIN9"},
    {"mskanji", "SJIS"},
    {"muleinternal", "MULE_INTERNAL"},
    {"shiftjis", "SJIS"},
    {"shiftjis2004", "SHIFT_JIS_2004"},
    {"sjis", "SJIS"},
    {"sqlascii", "SQL_ASCII"},
    {"tcvn", "WIN1258"},
    {"tcvn5712", "WIN1258"},
    {"uhc", "UHC"},
    {"unicode", "UTF8"},
    {"utf8", "UTF8"},
    {"vscii", "WIN1258"},
    {"win", "WIN1251"},
    {"win1250", "WIN1250"},
    {"win1251", "WIN1251"},
    {"win1252", "WIN1252"},
    {"win1253", "WIN1253"},
    {"win1254", "WIN1254"},
    {"win1255", "WIN1255"},
    {"win1256", "WIN1256"},
    {"win1257", "WIN1257"},
    {"win1258", "WIN1258"},
    {"win866", "WIN866"},
    {"win874", "WIN874"},
    {"win932", "SJIS"},
    {"win936", "GBK"},
    {"win949", "UHC"},
    {"win950", "BIG5"},
    {"windows1250", "WIN1250"},
    {"windows1251", "WIN1251"},
    {"windows1252", "WIN1252"},
    {"windows1253", "WIN1253"},
    {"windows1254", "WIN1254"},
    {"windows1255", "WIN1255"},
    {"windows1256", "WIN1256"},
    {"windows1257", "WIN1257"},
    {"windows1258", "WIN1258"},
    {"windows866", "WIN866"},
    {"windows874", "WIN874"},
    {"windows932", "SJIS"},
    {"windows936", "GBK"},
    {"windows949", "UHC"},
    {"windows950", "BIG5"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const struct pgfeed_encoding *pgfeed__encoding_find(const char *name)
{
    char key[64];
    size_t k = 0;
    /* As PostgreSQL's clean_encoding_name: letters and digits, lower case. */
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            continue;
        if (k + 1 >= sizeof key)
            return NULL;
        key[k++] = c;
    }
    key[k] = '\0';
    for (size_t i = 0; i < COUNT(aliases); i++) {
        if (strcmp(key, aliases[i].alias) != 0)
            continue;
        for (size_t j = 0; j < COUNT(encodings); j++)
            if (strcmp(encodings[j].name, aliases[i].name) == 0)
                return &encodings[j];
    }
    return NULL;
}

int pgfeed__encoding_is_utf8(const struct pgfeed_encoding *e)
{
    return e == NULL || e->sb == NULL;
}

size_t pgfeed__encoding_check(const struct pgfeed_encoding *e, const char *s, size_t n)
{
    if (pgfeed__encoding_is_utf8(e))
        return pgfeed__utf8_check(s, n);
    const unsigned char *p = (const unsigned char *)s;
    const uint16_t *sb = e->sb;
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    while (i < n) {
        /* 8 bytes at a time while they hold no zero byte and none >= 0x80 (exact as a yes
         * or no, whatever the byte order). */
        uint64_t v;
        if (n - i >= 8 && (memcpy(&v, p + i, 8), ((v | ((v - ones) & ~v)) & highs) == 0)) {
            i += 8;
            continue;
        }
        unsigned c = p[i];
        if (c == 0 || (c >= 0x80 && sb[c - 0x80] == 0))
            return i;
        i++;
    }
    return n;
}

int pgfeed__encoding_to_utf8(const struct pgfeed_encoding *e, const char *s, size_t n,
                             struct pgfeed_buf *out)
{
    out->len = 0;
    if (pgfeed__buf_reserve(out, 3 * n + 1) != 0)
        return UV_ENOMEM;
    if (pgfeed__encoding_is_utf8(e))
        return pgfeed__buf_append(out, s, n);
    char *o = out->data;
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        unsigned cp = c < 0x80 ? c : e->sb[c - 0x80] ? e->sb[c - 0x80] : 0xFFFD;
        if (cp < 0x80) {
            *o++ = (char)cp;
        } else if (cp < 0x800) {
            *o++ = (char)(0xC0 | cp >> 6);
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *o++ = (char)(0xE0 | cp >> 12);
            *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    out->len = (size_t)(o - out->data);
    return 0;
}

const char *pgfeed__encoding_utf16(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (n >= 2 && p[0] == 0xFF && p[1] == 0xFE)
        return "UTF-16LE";
    if (n >= 2 && p[0] == 0xFE && p[1] == 0xFF)
        return "UTF-16BE";
    /* Two ASCII characters, each with a zero byte beside it. */
    if (n >= 4 && p[0] && p[0] < 0x80 && !p[1] && p[2] && p[2] < 0x80 && !p[3])
        return "UTF-16LE";
    if (n >= 4 && !p[0] && p[1] && p[1] < 0x80 && !p[2] && p[3] && p[3] < 0x80)
        return "UTF-16BE";
    return NULL;
}
