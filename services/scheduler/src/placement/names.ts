// Resource class and trait names: the standard ones (a subset of os-resource-classes and
// os-traits that a compute cloud uses) and the CUSTOM_ namespace anyone may use.
import { invalidInput } from "@stratus/runtime";

export const STANDARD_RESOURCE_CLASSES: ReadonlySet<string> = new Set([
  "VCPU",
  "MEMORY_MB",
  "DISK_GB",
  "PCI_DEVICE",
  "SRIOV_NET_VF",
  "NUMA_SOCKET",
  "NUMA_CORE",
  "NUMA_THREAD",
  "NUMA_MEMORY_MB",
  "IPV4_ADDRESS",
  "VGPU",
  "VGPU_DISPLAY_HEAD",
  "NET_BW_EGR_KILOBIT_PER_SEC",
  "NET_BW_IGR_KILOBIT_PER_SEC",
  "PCPU",
  "MEM_ENCRYPTION_CONTEXT",
  "FPGA",
  "PGPU",
  "NET_PACKET_RATE_KILOPACKET_PER_SEC",
  "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
  "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
]);

export const SHARING_TRAIT = "MISC_SHARES_VIA_AGGREGATE";

/** Exact standard trait names; the prefixes below cover the large generated families. */
const STANDARD_TRAITS: ReadonlySet<string> = new Set([
  SHARING_TRAIT,
  "STORAGE_DISK_HDD",
  "STORAGE_DISK_SSD",
  "COMPUTE_NODE",
  "COMPUTE_TRUSTED_CERTS",
  "COMPUTE_VOLUME_ATTACH",
  "COMPUTE_VOLUME_EXTEND",
  "COMPUTE_VOLUME_MULTI_ATTACH",
  "COMPUTE_DEVICE_TAGGING",
  "COMPUTE_NET_ATTACH_INTERFACE",
  "COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG",
  "COMPUTE_MIGRATE_AUTO_CONVERGE",
  "COMPUTE_MIGRATE_POST_COPY",
  "COMPUTE_RESCUE_BFV",
  "COMPUTE_ACCELERATORS",
  "COMPUTE_SOCKET_PCI_NUMA_AFFINITY",
  "COMPUTE_REMOTE_MANAGED_PORTS",
  "COMPUTE_ADDRESS_SPACE_PASSTHROUGH",
  "COMPUTE_ADDRESS_SPACE_EMULATED",
  "COMPUTE_SAME_HOST_COLD_MIGRATE",
  "COMPUTE_EPHEMERAL_ENCRYPTION",
]);

const STANDARD_TRAIT_FAMILIES = [
  "HW_CPU_X86_",
  "HW_CPU_AARCH64_",
  "HW_CPU_PPC64LE_",
  "HW_CPU_",
  "HW_GPU_",
  "HW_NIC_",
  "HW_NUMA_",
  "HW_ARCH_",
  "HW_FPGA_",
  "HW_ACCELERATOR_",
  "COMPUTE_ARCH_",
  "COMPUTE_FIRMWARE_",
  "COMPUTE_GRAPHICS_MODEL_",
  "COMPUTE_IMAGE_TYPE_",
  "COMPUTE_NET_VIF_MODEL_",
  "COMPUTE_NET_VNIC_TYPE_",
  "COMPUTE_SECURITY_",
  "COMPUTE_STATUS_",
  "COMPUTE_STORAGE_BUS_",
  "COMPUTE_VIOMMU_MODEL_",
  "COMPUTE_SOUND_MODEL_",
  "COMPUTE_MEM_BACKING_FILE",
  "MISC_",
  "STORAGE_",
  "OWNER_",
  "CUSTOM_",
];

const CUSTOM = /^CUSTOM_[A-Z0-9_]+$/;
const STANDARD_SHAPE = /^[A-Z][A-Z0-9_]*$/;

export function isValidResourceClass(name: string): boolean {
  return STANDARD_RESOURCE_CLASSES.has(name) || (CUSTOM.test(name) && name.length <= 255);
}

export function assertResourceClass(name: string): void {
  if (!isValidResourceClass(name)) {
    throw invalidInput(
      `Invalid resource class ${JSON.stringify(name)}: use a standard class (e.g. VCPU, MEMORY_MB, DISK_GB, IPV4_ADDRESS) or CUSTOM_[A-Z0-9_]+`,
    );
  }
}

export function isValidTrait(name: string): boolean {
  if (name.length > 255) return false;
  if (name.startsWith("CUSTOM_")) return CUSTOM.test(name);
  if (!STANDARD_SHAPE.test(name)) return false;
  return STANDARD_TRAITS.has(name) || STANDARD_TRAIT_FAMILIES.some((prefix) => name.startsWith(prefix));
}

export function assertTrait(name: string): void {
  if (!isValidTrait(name)) {
    throw invalidInput(
      `Invalid trait ${JSON.stringify(name)}: use a standard trait (e.g. HW_CPU_X86_AVX2, COMPUTE_*, STORAGE_DISK_SSD, MISC_SHARES_VIA_AGGREGATE) or CUSTOM_[A-Z0-9_]+`,
    );
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function assertUuid(value: string, what: string): string {
  if (!UUID.test(value)) throw invalidInput(`${what} must be a UUID, got ${JSON.stringify(value)}`);
  return value.toLowerCase();
}
