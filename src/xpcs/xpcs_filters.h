/*
 * xpcs_filters.h - HDF5 compression filters of the XPCS reader (filters.c;
 * private, not installed).  Both are called with the HDF5 lock held
 * (nlsq__xpcs_h5_lock) and HDF5's error printing silenced.
 *
 *   nlsq__xpcs_filters_register  make the filters the library carries (LZF)
 *                           known to HDF5 unless the process already has them
 *   nlsq__xpcs_filter_check      one line naming the filter and the dataset when a
 *                           filter of dataset d cannot be decoded here
 */
#ifndef NLSQ_XPCS_FILTERS_H
#define NLSQ_XPCS_FILTERS_H

#include <hdf5.h>
#include <stddef.h>

#include "xpcs_common.h"

#define XPCS_LZF_FILTER_ID 32000   /* the h5py / beamline LZF filter */

XPCS__HIDDEN int nlsq__xpcs_filters_register(void);
XPCS__HIDDEN int nlsq__xpcs_filter_check(hid_t d, const char *fpath, const char *dpath, char *err,
                                    size_t es);

#endif /* NLSQ_XPCS_FILTERS_H */
