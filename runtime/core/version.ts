/** The modelfn version reported in the protocol's server metadata. */
export const VERSION = '0.1.0';
