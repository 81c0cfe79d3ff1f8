// Node-RED's settings for the benchmark peer (bench/peers.py starts it with --settings this file and a temporary
// userDir): no editor or admin API, quiet logging, the committed flows file read-only. The port comes from the
// environment so that the benchmark picks a free one.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.PORT, 10),
    flowFile: process.env.NODE_RED_FLOWS,
    flowFilePretty: true,
    credentialSecret: false,
    httpAdminRoot: false,
    disableEditor: true,
    logging: {console: {level: "warn", metrics: false, audit: false}},
    functionExternalModules: false,
    externalModules: {autoInstall: false, palette: {allowInstall: false}, modules: {allowInstall: false}},
    telemetry: {enabled: false},
    diagnostics: {enabled: false},
    runtimeState: {enabled: false},
    editorTheme: {tours: false},
};
