/* Native kernels of the J and F metrics: `boundary_matches` (F) and `label_boxes` (the regions both use).
 *
 * The Python path (vosbench/metrics/frames.py: seg2bmap, dilate_disk, counts) stays the
 * reference and the fallback; this file only does the same arithmetic in one pass per mask
 * and without materialising a dilated image. It is built as an optional extension: where no
 * C compiler is available the package installs without it and scores with the Python path.
 *
 * boundary_matches(mask_a, ay0, ax0, mask_b, by0, bx0, radius)
 *     mask_a, mask_b: 2-D one-byte buffers (numpy bool or uint8, any strides), the crops of two
 *         binary masks at frame offsets (ay0, ax0) and (by0, bx0). Each crop is taken as the
 *         DAVIS toolkits' seg2bmap takes an image: a pixel is boundary when it differs from its
 *         east, south or south-east neighbour; in the last row only east counts, in the last
 *         column only south, and the bottom-right pixel never is.
 *     radius: boundary pixels match within the disk x*x + y*y <= radius*radius (0..254).
 *     Returns (n_a, n_b, a_matched, b_matched): the boundary pixels of each crop, and how many
 *     of a's lie within the disk of some boundary pixel of b (and b's of a).
 *
 * Matching without a dilation: for the other mask's boundary, `near` holds per row the
 * horizontal distance from every column (its box widened by the radius on both sides) to the
 * nearest boundary pixel of that row, capped at radius + 1. A boundary pixel (y, x) matches when
 * some row y + dy within the radius has near <= floor(sqrt(radius^2 - dy^2)): the disk's half-width
 * on that row. Rows are tried outward from dy = 0, and the first hit ends the search.
 *
 * label_boxes(labels)
 *     labels: a 2-D uint8 id map (any strides). Returns (top, boxes): its largest id, and for every
 *     non-zero id present {id: (count, y0, y1, x0, x1)}, its pixel count and bounding box (ends
 *     exclusive). One pass over each row as runs of one id, eight or 64 bytes at a time, so that
 *     the cost follows the objects' outlines more than their areas.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct {
    Py_buffer view;
    Py_ssize_t height, width, row_stride, col_stride;
    const unsigned char *data;
    int is_bool;  /* numpy bool: every byte is 0 or 1 */
} Mask;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define IS_LITTLE_ENDIAN 0
#else
#define IS_LITTLE_ENDIAN 1
#endif

static int get_mask(PyObject *obj, Mask *mask, const char *name) {
    if (PyObject_GetBuffer(obj, &mask->view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return -1;
    if (mask->view.ndim != 2 || mask->view.itemsize != 1) {
        PyErr_Format(PyExc_ValueError, "%s must be a 2-D array of one-byte values (bool or uint8)", name);
        PyBuffer_Release(&mask->view);
        return -1;
    }
    mask->height = mask->view.shape[0];
    mask->width = mask->view.shape[1];
    mask->row_stride = mask->view.strides[0];
    mask->col_stride = mask->view.strides[1];
    mask->data = (const unsigned char *)mask->view.buf;
    mask->is_bool = mask->view.format != NULL && strcmp(mask->view.format, "?") == 0;
    return 0;
}

/* Boundary pixels of one crop, as frame coordinates. */
typedef struct {
    Py_ssize_t count, capacity;
    Py_ssize_t *y, *x;
} Points;

static int points_add(Points *p, Py_ssize_t y, Py_ssize_t x) {
    if (p->count == p->capacity) {
        Py_ssize_t capacity = p->capacity ? 2 * p->capacity : 1024;
        Py_ssize_t *ny = realloc(p->y, sizeof(Py_ssize_t) * (size_t)capacity);
        if (ny == NULL) return -1;
        p->y = ny;
        Py_ssize_t *nx = realloc(p->x, sizeof(Py_ssize_t) * (size_t)capacity);
        if (nx == NULL) return -1;
        p->x = nx;
        p->capacity = capacity;
    }
    p->y[p->count] = y;
    p->x[p->count] = x;
    p->count++;
    return 0;
}

static void points_free(Points *p) {
    free(p->y);
    free(p->x);
}

/* seg2bmap of the crop, one row at a time into `edge` (w bytes, branch-free so that the compiler
 * vectorises it), each boundary pixel appended to `out` at frame offset (y0, x0). `row`, `below`:
 * w-byte scratch rows holding the crop's rows as 0/1. Returns -1 when out of memory. */
static int boundary_points(const Mask *m, Py_ssize_t y0, Py_ssize_t x0, unsigned char *row, unsigned char *below,
                           unsigned char *edge, Points *out) {
    const Py_ssize_t h = m->height, w = m->width;
    if (h == 0 || w == 0) return 0;
    /* numpy bools are 0/1 already: their rows are read in place when contiguous; other bytes are made 0/1. */
    const int in_place = m->is_bool && m->col_stride == 1;
    const unsigned char *r, *b = NULL;
    if (in_place) {
        b = m->data;
    } else {
        for (Py_ssize_t x = 0; x < w; x++) below[x] = m->data[x * m->col_stride] != 0;
        b = below;
    }
    for (Py_ssize_t y = 0; y < h; y++) {
        r = b;
        if (!in_place) {  /* the row just read becomes this row; the other scratch row takes the next one */
            unsigned char *swap = row;
            row = below;
            below = swap;
        }
        const int last_row = y + 1 == h;
        if (!last_row) {
            const unsigned char *src = m->data + (y + 1) * m->row_stride;
            if (in_place) {
                b = src;
            } else if (m->col_stride == 1) {
                for (Py_ssize_t x = 0; x < w; x++) below[x] = src[x] != 0;
                b = below;
            } else {
                for (Py_ssize_t x = 0; x < w; x++) below[x] = src[x * m->col_stride] != 0;
                b = below;
            }
        }
        Py_ssize_t x = 0;
#ifdef __SSE2__
        /* Sixteen pixels at a time while their east neighbours lie in the row: the boundary bytes are
         * compared with zero and their bits walked, so that rows of no boundary cost a few instructions. */
        const __m128i zero = _mm_setzero_si128();
        for (; x + 17 <= w; x += 16) {
            const __m128i here = _mm_loadu_si128((const __m128i *)(r + x));
            __m128i differs = _mm_xor_si128(here, _mm_loadu_si128((const __m128i *)(r + x + 1)));
            if (!last_row)
                differs = _mm_or_si128(differs,
                                       _mm_or_si128(_mm_xor_si128(here, _mm_loadu_si128((const __m128i *)(b + x))),
                                                    _mm_xor_si128(here, _mm_loadu_si128((const __m128i *)(b + x + 1)))));
            unsigned bits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(differs, zero)) ^ 0xFFFFu;
            while (bits) {
                if (points_add(out, y0 + y, x0 + x + __builtin_ctz(bits)) < 0) return -1;
                bits &= bits - 1;
            }
        }
#endif
        /* The rest of the row (all of it without SSE2) through the edge bytes. */
        const Py_ssize_t from = x;
        if (!last_row) {
            for (Py_ssize_t i = from; i + 1 < w; i++)
                edge[i] = (unsigned char)((r[i] ^ r[i + 1]) | (r[i] ^ b[i]) | (r[i] ^ b[i + 1]));
            edge[w - 1] = (unsigned char)(r[w - 1] ^ b[w - 1]);  /* last column: south only */
        } else {
            for (Py_ssize_t i = from; i + 1 < w; i++) edge[i] = (unsigned char)(r[i] ^ r[i + 1]);  /* east only */
            edge[w - 1] = 0;  /* the bottom-right pixel never */
        }
        /* Boundary pixels are few: read the 0/1 bytes eight at a time, and jump to the set ones. */
        for (; x + 8 <= w; x += 8) {
            unsigned long long word;
            memcpy(&word, edge + x, 8);
            while (word) {
                const int bit = __builtin_ctzll(word);
                /* byte order: the byte at the lowest address is the lowest on little-endian machines */
                const Py_ssize_t at = x + (IS_LITTLE_ENDIAN ? bit >> 3 : 7 - (bit >> 3));
                if (points_add(out, y0 + y, x0 + at) < 0) return -1;
                word &= word - 1;
            }
        }
        for (; x < w; x++)
            if (edge[x] && points_add(out, y0 + y, x0 + x) < 0) return -1;
    }
    return 0;
}

/* Per row of a crop's box (h rows), widened by `radius` columns on both sides (w + 2 radius), the
 * horizontal distance to the row's nearest boundary pixel, capped at radius + 1. */
static void row_distances(const Points *p, Py_ssize_t y0, Py_ssize_t x0, Py_ssize_t h, Py_ssize_t w, int radius,
                          const unsigned char *tent, unsigned char *near) {
    const Py_ssize_t nw = w + 2 * (Py_ssize_t)radius;
    const int span = 2 * radius + 1;
    memset(near, radius + 1, (size_t)(h * nw));
    for (Py_ssize_t k = 0; k < p->count; k++) {
        /* Columns x - radius .. x + radius of the widened row are c = x - x0 .. x - x0 + 2 radius;
         * tent[d] = |d - radius| is their distance to x. */
        unsigned char *dst = near + (p->y[k] - y0) * nw + (p->x[k] - x0);
        for (int d = 0; d < span; d++) dst[d] = dst[d] < tent[d] ? dst[d] : tent[d];
    }
}

/* Points of `p` within the disk of a boundary pixel of the other crop, given by its `near` rows
 * (oh rows of ow + 2 radius columns, for the box at frame offset oy0, ox0). */
static Py_ssize_t count_matched(const Points *p, const unsigned char *near, Py_ssize_t oh, Py_ssize_t ow,
                                Py_ssize_t oy0, Py_ssize_t ox0, int radius, const int *half_width) {
    const Py_ssize_t nw = ow + 2 * (Py_ssize_t)radius;
    Py_ssize_t matched = 0;
    for (Py_ssize_t k = 0; k < p->count; k++) {
        const Py_ssize_t c = p->x[k] - ox0 + radius;  /* column in the other crop's widened rows */
        if (c < 0 || c >= nw) continue;               /* farther than the radius from its box */
        const Py_ssize_t row = p->y[k] - oy0;
        for (int d = 0; d <= radius; d++) {
            const Py_ssize_t above = row - d, below = row + d;
            if ((above >= 0 && above < oh && near[above * nw + c] <= half_width[d])
                || (d > 0 && below >= 0 && below < oh && near[below * nw + c] <= half_width[d])) {
                matched++;
                break;
            }
        }
    }
    return matched;
}

static PyObject *boundary_matches(PyObject *self, PyObject *args) {
    PyObject *a_obj, *b_obj;
    Py_ssize_t ay0, ax0, by0, bx0;
    int radius;
    if (!PyArg_ParseTuple(args, "OnnOnni", &a_obj, &ay0, &ax0, &b_obj, &by0, &bx0, &radius)) return NULL;
    if (radius < 0 || radius > 254) {
        PyErr_SetString(PyExc_ValueError, "radius must lie in 0..254");
        return NULL;
    }
    Mask a, b;
    if (get_mask(a_obj, &a, "mask_a") < 0) return NULL;
    if (get_mask(b_obj, &b, "mask_b") < 0) {
        PyBuffer_Release(&a.view);
        return NULL;
    }
    const Py_ssize_t widest = (a.width > b.width ? a.width : b.width) + 1;
    const Py_ssize_t a_near = a.height * (a.width + 2 * (Py_ssize_t)radius);
    const Py_ssize_t b_near = b.height * (b.width + 2 * (Py_ssize_t)radius);
    unsigned char *scratch = malloc((size_t)(3 * widest));
    unsigned char *near = malloc((size_t)((a_near > b_near ? a_near : b_near) + 1));
    int *half_width = malloc(sizeof(int) * (size_t)(radius + 1));
    unsigned char tent[2 * 254 + 1];
    for (int d = 0; d <= 2 * radius; d++) tent[d] = (unsigned char)(d < radius ? radius - d : d - radius);
    Points a_points = {0, 0, NULL, NULL}, b_points = {0, 0, NULL, NULL};
    int failed = scratch == NULL || near == NULL || half_width == NULL;
    Py_ssize_t a_matched = 0, b_matched = 0;
    if (!failed) {
        /* The disk's half-width on the row d away from its centre: the largest x with x*x + d*d <= r*r. */
        for (int d = 0; d <= radius; d++) {
            int x = 0;
            while ((x + 1) * (x + 1) + d * d <= radius * radius) x++;
            half_width[d] = x;
        }
        Py_BEGIN_ALLOW_THREADS
        failed = boundary_points(&a, ay0, ax0, scratch, scratch + widest, scratch + 2 * widest, &a_points) < 0
                 || boundary_points(&b, by0, bx0, scratch, scratch + widest, scratch + 2 * widest, &b_points) < 0;
        if (!failed && a_points.count > 0 && b_points.count > 0) {
            row_distances(&b_points, by0, bx0, b.height, b.width, radius, tent, near);
            a_matched = count_matched(&a_points, near, b.height, b.width, by0, bx0, radius, half_width);
            row_distances(&a_points, ay0, ax0, a.height, a.width, radius, tent, near);
            b_matched = count_matched(&b_points, near, a.height, a.width, ay0, ax0, radius, half_width);
        }
        Py_END_ALLOW_THREADS
    }
    const Py_ssize_t n_a = a_points.count, n_b = b_points.count;
    free(scratch);
    free(near);
    free(half_width);
    points_free(&a_points);
    points_free(&b_points);
    PyBuffer_Release(&a.view);
    PyBuffer_Release(&b.view);
    if (failed) return PyErr_NoMemory();
    return Py_BuildValue("nnnn", n_a, n_b, a_matched, b_matched);
}

/* Per id: pixel count and box (inclusive ends), filled by label_boxes. */
typedef struct {
    Py_ssize_t count[256], y0[256], y1[256], x0[256], x1[256];
} Boxes;

/* n pixels of id v on row y, in columns xa..xb. */
static inline void boxes_take(Boxes *s, unsigned v, Py_ssize_t y, Py_ssize_t xa, Py_ssize_t xb, Py_ssize_t n) {
    if (s->count[v] == 0) {
        s->y0[v] = y;
        s->x0[v] = xa;
        s->x1[v] = xb;
    } else {
        if (xa < s->x0[v]) s->x0[v] = xa;
        if (xb > s->x1[v]) s->x1[v] = xb;
    }
    s->y1[v] = y;  /* rows come in order */
    s->count[v] += n;
}

/* Whether the 64 bytes at p all equal v (same: v in every byte of a word). */
static inline int block_is(const unsigned char *p, unsigned v, unsigned long long same) {
#ifdef __SSE2__
    const __m128i want = _mm_set1_epi8((char)v);
    const __m128i diff = _mm_or_si128(
        _mm_or_si128(_mm_xor_si128(_mm_loadu_si128((const __m128i *)p), want),
                     _mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + 16)), want)),
        _mm_or_si128(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + 32)), want),
                     _mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + 48)), want)));
    (void)same;
    return _mm_movemask_epi8(_mm_cmpeq_epi8(diff, _mm_setzero_si128())) == 0xFFFF;
#else
    unsigned long long block[8];
    memcpy(block, p, 64);
    (void)v;
    return ((block[0] ^ same) | (block[1] ^ same) | (block[2] ^ same) | (block[3] ^ same) | (block[4] ^ same)
            | (block[5] ^ same) | (block[6] ^ same) | (block[7] ^ same)) == 0;
#endif
}

/* One row as runs of equal ids: a run is taken once, when it ends. Stretches that continue the current
 * run -- background, the inside of an object -- are skipped 64 or 8 bytes at a time, and in a word
 * where the id changes, the first differing byte is found from the word's bits, without a loop. */
static void boxes_row(const unsigned char *r, Py_ssize_t width, Py_ssize_t y, Boxes *s) {
    const unsigned long long ones = 0x0101010101010101ULL;
    unsigned cur = r[0];
    Py_ssize_t start = 0, x = 0;
    for (;;) {
        const unsigned long long same = cur * ones;
        if (x + 64 <= width && block_is(r + x, cur, same)) {
            x += 64;
            continue;
        }
        if (x + 8 <= width) {
            unsigned long long word;
            memcpy(&word, r + x, 8);
            const unsigned long long diff = word ^ same;
            if (diff == 0) {
                x += 8;
                continue;
            }
            /* the byte at the lowest address is the lowest on little-endian machines */
            x += (IS_LITTLE_ENDIAN ? __builtin_ctzll(diff) : __builtin_clzll(diff)) >> 3;
        } else {
            while (x < width && r[x] == cur) x++;
            if (x == width) break;
        }
        /* the id changes at x */
        if (cur) boxes_take(s, cur, y, start, x - 1, x - start);
        cur = r[x];
        start = x;
    }
    if (cur) boxes_take(s, cur, y, start, width - 1, width - start);
}

static void boxes_scan(const Mask *m, Boxes *s) {
    if (m->width == 0) return;
    for (Py_ssize_t y = 0; y < m->height; y++) {
        const unsigned char *r = m->data + y * m->row_stride;
        if (m->col_stride == 1) {
            boxes_row(r, m->width, y, s);
        } else {
            for (Py_ssize_t x = 0; x < m->width; x++) {
                const unsigned char v = r[x * m->col_stride];
                if (v) boxes_take(s, v, y, x, x, 1);
            }
        }
    }
}

static PyObject *label_boxes(PyObject *self, PyObject *args) {
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O", &obj)) return NULL;
    Mask m;
    if (get_mask(obj, &m, "labels") < 0) return NULL;
    if (m.view.format == NULL || strcmp(m.view.format, "B") != 0) {
        PyErr_SetString(PyExc_ValueError, "labels must be a 2-D uint8 array");
        PyBuffer_Release(&m.view);
        return NULL;
    }
    Boxes *s = calloc(1, sizeof(Boxes));
    if (s == NULL) {
        PyBuffer_Release(&m.view);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    boxes_scan(&m, s);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&m.view);
    PyObject *boxes = PyDict_New();
    int top = 0;
    for (int v = 1; v < 256 && boxes != NULL; v++) {
        if (s->count[v] == 0) continue;
        top = v;
        PyObject *key = PyLong_FromLong(v);
        PyObject *value = Py_BuildValue("nnnnn", s->count[v], s->y0[v], s->y1[v] + 1, s->x0[v], s->x1[v] + 1);
        if (key == NULL || value == NULL || PyDict_SetItem(boxes, key, value) < 0) Py_CLEAR(boxes);
        Py_XDECREF(key);
        Py_XDECREF(value);
    }
    free(s);
    if (boxes == NULL) return NULL;
    return Py_BuildValue("iN", top, boxes);
}

static PyMethodDef methods[] = {
    {"boundary_matches", boundary_matches, METH_VARARGS,
     "boundary_matches(mask_a, ay0, ax0, mask_b, by0, bx0, radius) -> (n_a, n_b, a_matched, b_matched)"},
    {"label_boxes", label_boxes, METH_VARARGS,
     "label_boxes(labels) -> (top, {id: (count, y0, y1, x0, x1)}) of a 2-D uint8 id map"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vosbench.metrics._native",
    "Native kernels of the J and F metrics (see boundary_matches, label_boxes).", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
