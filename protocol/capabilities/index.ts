// Capability gossip: each device publishes its cores, load, memory, power state, runtimes,
// local LLM models and version on a hive topic, repeatedly and on change, and keeps a live view
// of every device that expires entries when a device goes quiet. Placement bids from it.
// May use a narrow gossipsub interface, node:os/fs for the probe and loopback HTTP to Ollama;
// never imports node/.

export * from './errors.ts'
export * from './schema.ts'
export { DEFAULT_DRM_DIR, DEFAULT_NVIDIA_DIR, MAX_GPUS, readGpus } from './gpu.ts'
export { DEFAULT_OLLAMA_URL, DEFAULT_POWER_SUPPLY_DIR, createDeviceProbe, readOllamaModels, readPower } from './probe.ts'
export type { DeviceProbe, DeviceProbeInit, DeviceReading } from './probe.ts'
export { DEFAULT_CAPABILITIES_TOPIC, applyOverrides, createCapabilities } from './capabilities.ts'
export type { Capabilities, CapabilitiesComponents, CapabilitiesInit, CapabilitiesLog, CapabilitiesPubSub, CapabilityEntry } from './capabilities.ts'
