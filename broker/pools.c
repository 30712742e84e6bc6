/* placeholder: being written this session */
int vdi_placeholder_pools;
