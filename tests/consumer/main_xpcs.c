/* Links the installed XPCS library: names the seven physical parameters. */
#include <stdio.h>
#include <string.h>
#include <nlsq_xpcs.h>

int main(void)
{
    for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) printf("%s ", nlsq_xpcs_param_name(k));
    printf("\n");
    return strcmp(nlsq_xpcs_param_name(0), "D0") == 0 ? 0 : 1;
}
