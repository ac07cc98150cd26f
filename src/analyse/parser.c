/*
 * PostgreSQL's parser (libpg_query, linked by the pg_query crate) with a
 * faster protobuf encoder for its parse tree.
 *
 * libpg_query builds the tree as upb messages and serialises it with
 * upb_Encode, which visits every field of every message's mini-table. A
 * parse-tree Node is one oneof of ~270 message fields, so each Node costs
 * ~270 presence checks: half of all the instructions of an uncached
 * analysis of a 3-table join went there (callgrind). The encoder below
 * writes exactly the same bytes but reads a Node's oneof case once and
 * encodes only that field.
 *
 * It is hooked in with the linker's --wrap=upb_Encode (build.rs), and only
 * takes over on a thread inside pgwarden_parse; every other caller gets
 * upb's own encoder (__real_upb_Encode), which the tests in parse.rs use as
 * the reference for byte-equal output. The upb headers in third_party/upb
 * are those of the pinned pg_query version (Cargo.toml pins it exactly).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>

#include "upb/generated_code_support.h"

/* Must come after the upb header, which undefines its macros at its end. */
#include "upb/port/def.inc"

/* --- libpg_query's public API (pg_query.h of the pinned version) --- */

typedef struct
{
	char	   *message;
	char	   *funcname;
	char	   *filename;
	int			lineno;
	int			cursorpos;
	char	   *context;
} PgQueryError;

typedef struct
{
	size_t		len;
	char	   *data;
} PgQueryProtobuf;

typedef struct
{
	PgQueryProtobuf parse_tree;
	char	   *stderr_buffer;
	PgQueryError *error;
} PgQueryProtobufParseResult;

#define PG_QUERY_DISABLE_STANDARD_CONFORMING_STRINGS 32
#define PG_QUERY_DISABLE_ESCAPE_STRING_WARNING 64
/* PostgreSQL's elog level ERROR: only errors are reported, no warnings. */
#define PG_ERROR_LEVEL 21

extern PgQueryProtobufParseResult pg_query_parse_protobuf_opts(const char *input, int parser_options);
extern void pg_query_free_protobuf_parse_result(PgQueryProtobufParseResult result);
extern __thread int log_min_messages;
extern const upb_MiniTable pg_0query__Node_msg_init;

/* --- the encoder --- */

/* Set while pgwarden_parse runs on this thread. */
static __thread bool fast_encode;
/* Trees this thread's encoder wrote (the tests check it is in use). */
static __thread unsigned long fast_encodes;
/* Output buffer, reused across calls on this thread; written back to front. */
static __thread char *out_buf;
static __thread size_t out_cap;

/* Most stack the encoder uses before leaving a tree to upb's own encoder. */
#define STACK_BUDGET (256 * 1024)

typedef struct
{
	char	   *buf;			/* start of the buffer */
	char	   *end;			/* one past its end */
	int			depth;			/* submessage levels still allowed */
	const char *stack_top;		/* a local's address at entry */
	upb_EncodeStatus status;
	bool		defer;			/* leave this message to upb's encoder */
	jmp_buf		err;
} Encoder;

static void
fail(Encoder *e, upb_EncodeStatus status)
{
	e->status = status;
	longjmp(e->err, 1);
}

/* Something this encoder does not handle: upb's encoder takes over. */
static void
defer(Encoder *e)
{
	e->defer = true;
	longjmp(e->err, 1);
}

/* Grows the buffer so n more bytes fit in front of ptr; returns the moved ptr. */
static __attribute__((noinline)) char *
grow(Encoder *e, char *ptr, size_t n)
{
	size_t		used = (size_t) (e->end - ptr);
	size_t		cap = (size_t) (e->end - e->buf);
	char	   *grown;

	cap = cap * 2 > used + n + 256 ? cap * 2 : used + n + 256;
	grown = malloc(cap);
	if (grown == NULL)
		fail(e, kUpb_EncodeStatus_OutOfMemory);
	if (used > 0)
		memcpy(grown + cap - used, ptr, used);
	free(e->buf);
	e->buf = grown;
	e->end = grown + cap;
	return e->end - used;
}

/* Makes room for n more bytes in front of ptr; returns the moved ptr. */
static inline char *
reserve(Encoder *e, char *ptr, size_t n)
{
	return (size_t) (ptr - e->buf) >= n ? ptr : grow(e, ptr, n);
}

static inline char *
put_bytes(Encoder *e, char *ptr, const void *data, size_t n)
{
	if (n == 0)
		return ptr;
	ptr = reserve(e, ptr, n) - n;
	memcpy(ptr, data, n);
	return ptr;
}

static inline char *
put_varint(Encoder *e, char *ptr, uint64_t v)
{
	size_t		n = 1;
	char	   *p;

	for (uint64_t rest = v >> 7; rest != 0; rest >>= 7)
		n++;
	ptr = reserve(e, ptr, n) - n;
	p = ptr;
	for (; v >= 0x80; v >>= 7)
		*p++ = (char) (v | 0x80);
	*p = (char) v;
	return ptr;
}

static inline char *
put_tag(Encoder *e, char *ptr, uint32_t number, upb_WireType wire)
{
	return put_varint(e, ptr, ((uint64_t) number << 3) | (uint64_t) wire);
}

static inline char *
put_fixed(Encoder *e, char *ptr, const void *mem, size_t n)
{
	/* Little-endian targets only (as pgwarden's deploy targets are). */
	return put_bytes(e, ptr, mem, n);
}

static char *write_message(Encoder *e, char *ptr, const upb_Message *msg, const upb_MiniTable *m);

/* One submessage: its bytes, then (in front) its length. */
static char *
put_submessage(Encoder *e, char *ptr, const upb_Message *sub, const upb_MiniTable *m)
{
	size_t		after = (size_t) (e->end - ptr);
	char		here;

	if (--e->depth == 0)
		fail(e, kUpb_EncodeStatus_MaxDepthExceeded);
	/* Very deep trees go to upb, which knows the thread's real stack. */
	if ((uintptr_t) e->stack_top - (uintptr_t) &here > STACK_BUDGET)
		defer(e);
	ptr = write_message(e, ptr, sub, m);
	e->depth++;
	return put_varint(e, ptr, (uint64_t) ((size_t) (e->end - ptr) - after));
}

/* A scalar value of a varint type, as upb widens it. */
static uint64_t
varint_value(const upb_MiniTableField *f, const void *mem)
{
	switch (f->UPB_PRIVATE(descriptortype))
	{
		case kUpb_FieldType_Int64:
		case kUpb_FieldType_UInt64:
			return *(const uint64_t *) mem;
		case kUpb_FieldType_UInt32:
			return *(const uint32_t *) mem;
		case kUpb_FieldType_Int32:
		case kUpb_FieldType_Enum:
			return (uint64_t) (int64_t) *(const int32_t *) mem;
		case kUpb_FieldType_Bool:
			return *(const bool *) mem;
		case kUpb_FieldType_SInt32:
			{
				int32_t		n = *(const int32_t *) mem;

				return (uint32_t) (((uint32_t) n << 1) ^ (uint32_t) (n >> 31));
			}
		case kUpb_FieldType_SInt64:
			{
				int64_t		n = *(const int64_t *) mem;

				return ((uint64_t) n << 1) ^ (uint64_t) (n >> 63);
			}
		default:
			return 0;
	}
}

/* Size of a fixed-width type, or 0 for varint types. */
static size_t
fixed_size(const upb_MiniTableField *f)
{
	switch (f->UPB_PRIVATE(descriptortype))
	{
		case kUpb_FieldType_Double:
		case kUpb_FieldType_Fixed64:
		case kUpb_FieldType_SFixed64:
			return 8;
		case kUpb_FieldType_Float:
		case kUpb_FieldType_Fixed32:
		case kUpb_FieldType_SFixed32:
			return 4;
		default:
			return 0;
	}
}

static char *
write_scalar(Encoder *e, char *ptr, const upb_MiniTableField *f, const void *mem)
{
	uint32_t	number = upb_MiniTableField_Number(f);
	size_t		fixed;

	switch (f->UPB_PRIVATE(descriptortype))
	{
		case kUpb_FieldType_String:
		case kUpb_FieldType_Bytes:
			{
				const upb_StringView *s = (const upb_StringView *) mem;

				ptr = put_bytes(e, ptr, s->data, s->size);
				ptr = put_varint(e, ptr, s->size);
				return put_tag(e, ptr, number, kUpb_WireType_Delimited);
			}
		case kUpb_FieldType_Message:
			{
				const upb_Message *sub = *(const upb_Message *const *) mem;

				if (sub == NULL)
					return ptr;
				ptr = put_submessage(e, ptr, sub, upb_MiniTable_GetSubMessageTable(f));
				return put_tag(e, ptr, number, kUpb_WireType_Delimited);
			}
		case kUpb_FieldType_Group:
			defer(e);
			return ptr;
		default:
			fixed = fixed_size(f);
			if (fixed)
			{
				ptr = put_fixed(e, ptr, mem, fixed);
				return put_tag(e, ptr, number, fixed == 8 ? kUpb_WireType_64Bit : kUpb_WireType_32Bit);
			}
			ptr = put_varint(e, ptr, varint_value(f, mem));
			return put_tag(e, ptr, number, kUpb_WireType_Varint);
	}
}

static char *
write_array(Encoder *e, char *ptr, const upb_MiniTableField *f, const upb_Array *arr)
{
	uint32_t	number = upb_MiniTableField_Number(f);
	size_t		n,
				fixed = fixed_size(f);
	const char *data;

	if (arr == NULL || (n = upb_Array_Size(arr)) == 0)
		return ptr;
	data = upb_Array_DataPtr(arr);
	switch (f->UPB_PRIVATE(descriptortype))
	{
		case kUpb_FieldType_String:
		case kUpb_FieldType_Bytes:
			while (n-- > 0)
				ptr = write_scalar(e, ptr, f, data + n * sizeof(upb_StringView));
			return ptr;
		case kUpb_FieldType_Message:
			{
				const upb_MiniTable *sub = upb_MiniTable_GetSubMessageTable(f);
				const upb_Message *const *items = (const upb_Message *const *) data;

				while (n-- > 0)
				{
					ptr = put_submessage(e, ptr, items[n], sub);
					ptr = put_tag(e, ptr, number, kUpb_WireType_Delimited);
				}
				return ptr;
			}
		case kUpb_FieldType_Group:
			defer(e);
			return ptr;
		default:
			{
				/* Numbers: element size is the field's own width (bool: 1). */
				size_t		elem = fixed ? fixed : (size_t) 1 << UPB_PRIVATE(_upb_Array_ElemSizeLg2)(arr);

				if (upb_MiniTableField_IsPacked(f))
				{
					size_t		after = (size_t) (e->end - ptr);

					while (n-- > 0)
						ptr = fixed ? put_fixed(e, ptr, data + n * elem, elem)
							: put_varint(e, ptr, varint_value(f, data + n * elem));
					ptr = put_varint(e, ptr, (uint64_t) ((size_t) (e->end - ptr) - after));
					return put_tag(e, ptr, number, kUpb_WireType_Delimited);
				}
				while (n-- > 0)
					ptr = write_scalar(e, ptr, f, data + n * elem);
				return ptr;
			}
	}
}

/* Whether upb would write field f of msg (its presence rules). */
static bool
present(const upb_Message *msg, const upb_MiniTableField *f)
{
	const char *mem = (const char *) msg + f->UPB_PRIVATE(offset);

	if (f->presence == 0)
	{
		switch (UPB_PRIVATE(_upb_MiniTableField_GetRep) (f))
		{
			case kUpb_FieldRep_1Byte:
				return *(const uint8_t *) mem != 0;
			case kUpb_FieldRep_4Byte:
				{
					uint32_t	v;

					memcpy(&v, mem, 4);
					return v != 0;
				}
			case kUpb_FieldRep_8Byte:
				{
					uint64_t	v;

					memcpy(&v, mem, 8);
					return v != 0;
				}
			default:
				return ((const upb_StringView *) mem)->size != 0;
		}
	}
	if (UPB_PRIVATE(_upb_MiniTableField_HasHasbit) (f))
		return UPB_PRIVATE(_upb_Message_GetHasbit) (msg, f);
	return UPB_PRIVATE(_upb_Message_GetOneofCase) (msg, f) == upb_MiniTableField_Number(f);
}

static char *
write_field(Encoder *e, char *ptr, const upb_Message *msg, const upb_MiniTableField *f)
{
	const char *mem = (const char *) msg + f->UPB_PRIVATE(offset);

	switch (UPB_PRIVATE(_upb_MiniTableField_Mode) (f))
	{
		case kUpb_FieldMode_Scalar:
			return write_scalar(e, ptr, f, mem);
		case kUpb_FieldMode_Array:
			return write_array(e, ptr, f, *(const upb_Array *const *) mem);
		default:
			/* pg_query.proto has no maps. */
			defer(e);
			return ptr;
	}
}

static char *
write_message(Encoder *e, char *ptr, const upb_Message *msg, const upb_MiniTable *m)
{
	int			count = upb_MiniTable_FieldCount(m);

	if (m == &pg_0query__Node_msg_init && count > 0)
	{
		/* Every field of Node is one member of its oneof. */
		const upb_MiniTableField *first = upb_MiniTable_GetFieldByIndex(m, 0);
		uint32_t	which = UPB_PRIVATE(_upb_Message_GetOneofCase) (msg, first);
		const upb_MiniTableField *f;

		if (which == 0)
			return ptr;
		f = upb_MiniTable_FindFieldByNumber(m, which);
		return f == NULL ? ptr : write_field(e, ptr, msg, f);
	}
	/* Back to front, as upb does, so fields come out in number order. */
	while (count-- > 0)
	{
		const upb_MiniTableField *f = upb_MiniTable_GetFieldByIndex(m, (uint32_t) count);

		if (present(msg, f))
			ptr = write_field(e, ptr, msg, f);
	}
	return ptr;
}

/* Whether every field of Node shares one oneof (checked once per thread). */
static bool
node_is_one_oneof(void)
{
	static __thread int known;	/* 0 unknown, 1 yes, 2 no */
	const upb_MiniTable *m = &pg_0query__Node_msg_init;
	int			count = upb_MiniTable_FieldCount(m);

	if (known == 0)
	{
		known = count > 0 ? 1 : 2;
		for (int i = 0; i < count && known == 1; i++)
		{
			const upb_MiniTableField *f = upb_MiniTable_GetFieldByIndex(m, (uint32_t) i);

			if (f->presence >= 0 || f->presence != upb_MiniTable_GetFieldByIndex(m, 0)->presence)
				known = 2;
		}
	}
	return known == 1;
}

extern upb_EncodeStatus __real_upb_Encode(const upb_Message *msg, const upb_MiniTable *l,
										  int options, upb_Arena *arena, char **buf, size_t *size);
upb_EncodeStatus __wrap_upb_Encode(const upb_Message *msg, const upb_MiniTable *l,
								   int options, upb_Arena *arena, char **buf, size_t *size);

/* upb_Encode, for every caller (see --wrap in build.rs). */
upb_EncodeStatus
__wrap_upb_Encode(const upb_Message *msg, const upb_MiniTable *l, int options,
				  upb_Arena *arena, char **buf, size_t *size)
{
	Encoder		e;
	char	   *volatile ptr;
	char		top;

	/* Options other than the depth limit change upb's output: defer. */
	if (!fast_encode || (options & 0xffff) != 0 || !node_is_one_oneof())
		return __real_upb_Encode(msg, l, options, arena, buf, size);
	e.buf = out_buf;
	e.end = out_buf + out_cap;
	e.depth = upb_EncodeOptions_GetEffectiveMaxDepth((uint32_t) options);
	e.stack_top = &top;
	e.status = kUpb_EncodeStatus_Ok;
	e.defer = false;
	ptr = e.end;
	if (setjmp(e.err) == 0)
		ptr = write_message(&e, ptr, msg, l);
	/* The buffer may have grown before an error too: keep it either way. */
	out_buf = e.buf;
	out_cap = (size_t) (e.end - e.buf);
	if (e.defer)
		return __real_upb_Encode(msg, l, options, arena, buf, size);
	if (e.status != kUpb_EncodeStatus_Ok)
	{
		*buf = NULL;
		*size = 0;
		return e.status;
	}
	fast_encodes++;
	/* Callers copy the bytes out at once; an empty message needs a non-null pointer. */
	*buf = ptr != NULL ? ptr : (char *) "";
	*size = (size_t) (e.end - ptr);
	return kUpb_EncodeStatus_Ok;
}

/* --- the entry point --- */

/* What pgwarden_parse returns: a protobuf ParseResult, or an error. */
typedef struct
{
	PgQueryProtobuf tree;
	char	   *message;
	int			cursorpos;
} PgwardenParse;

static PgwardenParse
parse_with(const char *input, bool standard_conforming, bool fast)
{
	PgwardenParse out = {{0, NULL}, NULL, 0};
	PgQueryProtobufParseResult result;
	int			options = PG_QUERY_DISABLE_ESCAPE_STRING_WARNING;

	if (!standard_conforming)
		options |= PG_QUERY_DISABLE_STANDARD_CONFORMING_STRINGS;
	log_min_messages = PG_ERROR_LEVEL;
	fast_encode = fast;
	result = pg_query_parse_protobuf_opts(input, options);
	fast_encode = false;
	if (result.error != NULL)
	{
		out.message = strdup(result.error->message != NULL ? result.error->message : "parse error");
		out.cursorpos = result.error->cursorpos;
	}
	else
	{
		out.tree = result.parse_tree;
		result.parse_tree.data = NULL;
	}
	pg_query_free_protobuf_parse_result(result);
	/* A buffer grown by one huge statement is not kept for the next. */
	if (out_cap > (1 << 20))
	{
		free(out_buf);
		out_buf = NULL;
		out_cap = 0;
	}
	return out;
}

/*
 * Parses input (standard_conforming_strings as given) with the fast encoder
 * and no warnings written to stderr (pgwarden does not use them); free the
 * result with pgwarden_parse_free.
 */
PgwardenParse
pgwarden_parse(const char *input, bool standard_conforming)
{
	return parse_with(input, standard_conforming, true);
}

/* The same parse with upb's own encoder (the tests' reference). */
PgwardenParse
pgwarden_parse_reference(const char *input, bool standard_conforming)
{
	return parse_with(input, standard_conforming, false);
}

/* How many trees pgwarden's encoder wrote on this thread. */
unsigned long
pgwarden_fast_encodes(void)
{
	return fast_encodes;
}

/* Frees what pgwarden_parse allocated. */
void
pgwarden_parse_free(PgwardenParse result)
{
	free(result.tree.data);
	free(result.message);
}

