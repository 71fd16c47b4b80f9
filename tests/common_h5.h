/*
 * common_h5.h - HDF5 fixtures the tests share (on top of common.h): writing
 * datasets of test files, and the check that the library closed every
 * object it opened.
 */
#ifndef NLSQ_TESTS_COMMON_H5_H
#define NLSQ_TESTS_COMMON_H5_H

#include "common.h"

#include <hdf5.h>

/* Every HDF5 object of the process is closed. */
static inline void tc_assert_no_h5_objects(void)
{
    assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* Dataset name (intermediate groups created) of type ftype and shape dims
 * (rank 0: a scalar), holding data of memory type mtype (NULL: nothing
 * written). */
static inline void tc_h5_put(hid_t fid, const char *name, int rank, const hsize_t *dims,
                             hid_t ftype, hid_t mtype, const void *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(fid, name, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    if (data) assert_true(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(lcpl);
}

#endif
