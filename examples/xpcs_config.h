/*
 * xpcs_config.h - fit_xpcs --config FILE.yaml: a homodyne configuration file
 * (imewei/homodyne templates) read with libyaml (xpcs_config.c).
 *
 * xpcs_config_apply() fills the fields of *a that the command line left
 * out (the command line overrides the file).  Keys read, all optional:
 *
 *   experimental_data.file_path, or .data_folder_path + .data_file_name
 *   analyzer_parameters.dt                     --dt
 *   analyzer_parameters.start_frame, end_frame 1-based inclusive: --frames S-1:E-1
 *   analyzer_parameters.scattering.wavevector_q  --q
 *   analyzer_parameters.geometry.stator_rotor_gap  --gap
 *   analysis_mode  laminar_flow | static | static_isotropic | static_anisotropic
 *   initial_parameters.parameter_names + .values  --init (start values)
 *   initial_parameters.fixed_parameters  names (held at their start value)
 *                                        or {name: value} (held at value)
 *   initial_parameters.active_parameters  names; the others are held
 *   parameter_space.bounds  [{name, min, max}, ...]
 *   phi_filtering.enabled, .target_ranges [{min_angle, max_angle}, ...]
 *
 * Parameter names are homodyne's or this program's: D0 alpha D_offset
 * gamma_dot_0 (gamma_dot_t0) beta gamma_dot_offset (gamma_dot_t_offset)
 * phi0 (phi_0).  Unknown keys and unknown parameter names are ignored; a
 * YAML syntax error or a value of the wrong type fails with one line naming
 * the key path.  Strings taken from the file are owned by *store.
 */
#ifndef XPCS_CONFIG_H
#define XPCS_CONFIG_H

#include <stddef.h>

#include "fit_xpcs_args.h"

typedef struct xpcs_config_store {
    char *input;     /* the data file path, when the configuration gave it */
} xpcs_config_store;

/** 0, or -1 with one line in err (no newline). */
int xpcs_config_apply(const char *path, fit_xpcs_args *a, xpcs_config_store *store, char *err,
                      size_t err_size);
void xpcs_config_store_free(xpcs_config_store *store);

/** The physical parameter index of a homodyne or fit_xpcs name, or -1. */
int xpcs_config_param_index(const char *name);

#endif /* XPCS_CONFIG_H */
