/* Links the installed MPI component; runs without MPI_Init (no mpirun):
 * nlsq_mpi_partition is plain arithmetic over the row range. */
#include <stdio.h>
#include <nlsq_mpi.h>

int main(void)
{
    size_t b = 0, e = 0, total = 0;
    for (int rank = 0; rank < 3; rank++) {
        nlsq_mpi_partition(1000, 10, 3, rank, &b, &e);
        total += e - b;
    }
    printf("nlsq_mpi: 3 ranks cover %zu of 1000 rows\n", total);
    return total == 1000 ? 0 : 1;
}
