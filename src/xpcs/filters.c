/*
 * filters.c - HDF5 compression filters for the beamline's files, with no
 * environment variable (part 1 of nlsq_xpcs.h).
 *
 * The APS 8-ID-I two-time writer stores every large array with the LZF
 * filter (HDF5 filter id 32000, the h5py filter).  HDF5 itself knows only
 * deflate, szip, shuffle, fletcher32, nbit and scale-offset; other filters are
 * dynamically loaded plugins.  Debian's LZF plugin (hdf5-plugin-lzf) does not
 * load into HDF5 1.10.8 (H5Zfilter_avail(32000) stays 0), so the library
 * carries its own LZF filter, built on Debian's liblzf, and registers it with
 * H5Zregister the first time a file is opened, unless the process already
 * has an LZF filter (an application's own, or a working plugin).  Other
 * filters (LZ4 32004 and bzip2 307 from Debian's hdf5-filter-plugin,
 * bitshuffle 32008 from Debian's bitshuffle) are plugins that HDF5 loads from
 * its compiled-in plugin directory on first use.
 *
 * The LZF filter format (as h5py writes it): the chunk is compressed whole by
 * lzf_compress; cd_values = {filter revision, LZF version, chunk size in
 * bytes}.  When the compressed chunk would not be smaller, the filter fails
 * and HDF5 stores the chunk raw (the filter is registered optional by the
 * writers).  On reading, the chunk size from cd_values[2] sizes the output;
 * without it (or when it is 0) the buffer grows until the chunk fits.
 *
 * nlsq__xpcs_filter_check tells a dataset whose filters cannot be applied, so the
 * error names the filter and the dataset instead of failing at the first read.
 */
#include "nlsq_xpcs.h"
#include "xpcs_common.h"
#include "xpcs_filters.h"

#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#ifdef NLSQ_HAVE_LZF
#include <lzf.h>
#endif

#define XPCS_LZF_ID         XPCS_LZF_FILTER_ID
#define XPCS_LZF_REVISION   4        /* cd_values[0] as h5py writes it */
#define XPCS_LZF_LIB_VER    0x0105   /* cd_values[1]: LZF format version */
#define XPCS_LZF_MAX_GROW   (1u << 31)

/* ------------------------------------------------------------------------ */
/* The LZF filter                                                            */
/* ------------------------------------------------------------------------ */

#ifdef NLSQ_HAVE_LZF
/* set_local: record the uncompressed chunk size in cd_values[2]. */
static herr_t lzf_set_local(hid_t dcpl, hid_t type, hid_t space)
{
    (void)space;
    unsigned flags = 0, cd[8] = {0};
    size_t ncd = 8;
    if (H5Pget_filter_by_id2(dcpl, XPCS_LZF_ID, &flags, &ncd, cd, 0, NULL, NULL) < 0)
        return -1;
    hsize_t chunk[H5S_MAX_RANK];
    int rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
    size_t tsize = H5Tget_size(type);
    if (rank <= 0 || tsize == 0) return -1;
    unsigned long long bytes = tsize;
    for (int i = 0; i < rank; i++) {
        bytes *= chunk[i];
        if (bytes > UINT_MAX) bytes = 0;   /* too big to record: sized on reading */
    }
    cd[0] = XPCS_LZF_REVISION;
    cd[1] = XPCS_LZF_LIB_VER;
    cd[2] = (unsigned)bytes;
    return H5Pmodify_filter(dcpl, XPCS_LZF_ID, flags, 3, cd);
}

static size_t lzf_decode(size_t ncd, const unsigned cd[], size_t nbytes, size_t *buf_size,
                         void **buf)
{
    size_t out_size = ncd >= 3 && cd[2] > 0 ? cd[2] : 3 * nbytes + 64;
    if (nbytes > UINT_MAX) return 0;
    for (;;) {
        if (out_size > UINT_MAX) out_size = UINT_MAX;
        void *out = H5allocate_memory(out_size, 0);
        if (!out) return 0;
        unsigned got = lzf_decompress(*buf, (unsigned)nbytes, out, (unsigned)out_size);
        if (got > 0) {
            H5free_memory(*buf);
            *buf = out;
            *buf_size = out_size;
            return got;
        }
        int grow = errno == E2BIG && out_size < XPCS_LZF_MAX_GROW && out_size < UINT_MAX;
        H5free_memory(out);
        if (!grow) return 0;   /* corrupt data, or a chunk beyond any plausible size */
        out_size *= 2;
    }
}

static size_t lzf_encode(size_t nbytes, size_t *buf_size, void **buf)
{
    if (nbytes == 0 || nbytes > UINT_MAX) return 0;
    void *out = H5allocate_memory(nbytes, 0);
    if (!out) return 0;
    unsigned got = lzf_compress(*buf, (unsigned)nbytes, out, (unsigned)nbytes);
    if (got == 0) {   /* would not shrink: HDF5 stores the chunk raw */
        H5free_memory(out);
        return 0;
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = nbytes;
    return got;
}

static size_t lzf_filter(unsigned flags, size_t ncd, const unsigned cd[], size_t nbytes,
                         size_t *buf_size, void **buf)
{
    if (flags & H5Z_FLAG_REVERSE) return lzf_decode(ncd, cd, nbytes, buf_size, buf);
    return lzf_encode(nbytes, buf_size, buf);
}

static const H5Z_class2_t xpcs_lzf_class = {
    H5Z_CLASS_T_VERS, (H5Z_filter_t)XPCS_LZF_ID, 1, 1, "lzf (nlsq_xpcs, liblzf)",
    NULL, lzf_set_local, lzf_filter};
#endif /* NLSQ_HAVE_LZF */

/* Called with the HDF5 lock held. */
int nlsq__xpcs_filters_register(void)
{
#ifdef NLSQ_HAVE_LZF
    if (H5Zfilter_avail(XPCS_LZF_ID) > 0) return 0;
    return H5Zregister(&xpcs_lzf_class) < 0 ? NLSQ_XPCS_EFILE : 0;
#else
    return 0;
#endif
}

int nlsq_xpcs_register_filters(void)
{
    nlsq__xpcs_h5_lock();
    H5E_auto2_t func = NULL;
    void *data = NULL;
    int saved = H5Eget_auto2(H5E_DEFAULT, &func, &data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = nlsq__xpcs_filters_register();
    if (saved) H5Eset_auto2(H5E_DEFAULT, func, data);
    nlsq__xpcs_h5_unlock();
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Telling unavailable filters                                               */
/* ------------------------------------------------------------------------ */

typedef struct known_filter {
    int id;
    const char *name;
    const char *debian;   /* the Debian package that provides it, or NULL */
} known_filter;

static const known_filter known_filters[] = {
    {1, "deflate (gzip)", NULL},
    {2, "shuffle", NULL},
    {3, "fletcher32", NULL},
    {4, "szip", "libhdf5-dev built with libaec"},
    {5, "nbit", NULL},
    {6, "scaleoffset", NULL},
    {307, "bzip2", "hdf5-filter-plugin"},
    {32000, "LZF", "liblzf-dev, then rebuild nlsq"},
    {32001, "blosc", "hdf5-filter-plugin-blosc-serial"},
    {32004, "LZ4", "hdf5-filter-plugin"},
    {32008, "bitshuffle", "bitshuffle"},
    {32013, "zfp", "hdf5-filter-plugin-zfp-serial"},
    {32015, "zstd", NULL},
};

/* One line into err when a filter of dataset d (path dpath of file fpath) is
 * not available; returns 0 when all are, else NLSQ_XPCS_EFORMAT.  Called with
 * the HDF5 lock held. */
int nlsq__xpcs_filter_check(hid_t d, const char *fpath, const char *dpath, char *err, size_t es)
{
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0) return 0;   /* nothing to tell; a read would fail and say so */
    int nf = H5Pget_nfilters(dcpl), rc = 0;
    for (int k = 0; k < nf && rc == 0; k++) {
        unsigned flags = 0, cd[16];
        size_t ncd = 16;
        char stored[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, sizeof stored,
                                         stored, NULL);
        if (id < 0 || H5Zfilter_avail(id) > 0) continue;
        const known_filter *kf = NULL;
        for (size_t i = 0; i < sizeof known_filters / sizeof known_filters[0]; i++)
            if (known_filters[i].id == (int)id) kf = &known_filters[i];
        const char *name = kf ? kf->name : stored[0] ? stored : "unknown";
        xpcs__err(err, es,
                  "%s: dataset '%s' is compressed with HDF5 filter %d (%s), which this HDF5 "
                  "cannot decode%s%s%s",
                  fpath, dpath, (int)id, name, kf && kf->debian ? " (Debian package: " : "",
                  kf && kf->debian ? kf->debian : "", kf && kf->debian ? ")" : "");
        rc = NLSQ_XPCS_EFORMAT;
    }
    H5Pclose(dcpl);
    return rc;
}
