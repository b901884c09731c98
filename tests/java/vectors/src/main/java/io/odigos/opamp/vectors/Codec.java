package io.odigos.opamp.vectors;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.Message;
import com.google.protobuf.RuntimeVersion;
import com.google.protobuf.util.JsonFormat;
import com.opamp.proto.AgentToServer;
import com.opamp.proto.ServerToAgent;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Encodes the golden vectors of tests/vectors with gen/java's classes and decodes wire bytes back
 * to proto3 JSON. Shared by {@link Vectors} (driven by the cargo harness) and RoundTripTest.
 */
final class Codec {
  /** The message types the vectors use, by their full protobuf name. */
  private static final Map<String, Message> TYPES =
      Map.of(
          AgentToServer.getDescriptor().getFullName(), AgentToServer.getDefaultInstance(),
          ServerToAgent.getDescriptor().getFullName(), ServerToAgent.getDefaultInstance());

  private Codec() {}

  /** One vector file: the full message name and the message as proto3 JSON. */
  record Vector(String type, JsonElement message) {}

  static Vector readVector(Path path) throws IOException {
    JsonObject file =
        JsonParser.parseString(Files.readString(path, StandardCharsets.UTF_8)).getAsJsonObject();
    return new Vector(file.get("type").getAsString(), file.get("message"));
  }

  /** proto3 JSON to wire bytes, map entries sorted by key as the other languages write them. */
  static byte[] encode(String type, JsonElement message) throws IOException {
    Message.Builder builder = prototype(type).newBuilderForType();
    JsonFormat.parser().merge(message.toString(), builder);
    Message built = builder.build();
    byte[] wire = new byte[built.getSerializedSize()];
    CodedOutputStream out = CodedOutputStream.newInstance(wire);
    out.useDeterministicSerialization();
    built.writeTo(out);
    out.checkNoSpaceLeft();
    return wire;
  }

  /** Wire bytes to proto3 JSON. */
  static JsonElement decode(String type, byte[] wire) throws IOException {
    Message message = prototype(type).getParserForType().parseFrom(wire);
    return JsonParser.parseString(JsonFormat.printer().print(message));
  }

  /**
   * The protobuf-java release on the classpath, e.g. 4.29.6. Read by reflection: RuntimeVersion's
   * fields are compile-time constants, which javac would otherwise copy into this class.
   */
  static String runtimeVersion() {
    try {
      Class<?> version = RuntimeVersion.class;
      return version.getField("MAJOR").getInt(null)
          + "."
          + version.getField("MINOR").getInt(null)
          + "."
          + version.getField("PATCH").getInt(null)
          + version.getField("SUFFIX").get(null);
    } catch (ReflectiveOperationException err) {
      throw new IllegalStateException("protobuf-java has no readable RuntimeVersion", err);
    }
  }

  private static Message prototype(String type) {
    Message prototype = TYPES.get(type);
    if (prototype == null) {
      throw new IllegalArgumentException(
          "message type " + type + " is not one the Java codec knows (add it to Codec.TYPES)");
    }
    return prototype;
  }
}
